"""A validation curve still rising at the end of a run, and one that is not."""

from __future__ import annotations

from fkt_plugin.evaluation.convergence import still_rising


def test_a_curve_whose_last_validation_is_its_best_by_a_point_is_still_rising() -> None:
    # A 60-step fine-tuning validated every 2 steps, still climbing at the end.
    curve = [(step, 0.4 + 0.005 * step) for step in range(2, 62, 2)]
    rising = still_rising(curve)
    assert rising is not None
    assert rising["step"] == 60 and rising["val_acc1"] == curve[-1][1]
    # The validation nearest to three quarters of 60 steps is the one at step 44 or 46.
    assert rising["earlier_step"] in (44, 46)
    assert rising["val_acc1"] - rising["earlier_val_acc1"] >= 0.01


def test_a_plateau_an_earlier_best_or_a_single_validation_is_not_rising() -> None:
    plateau = [(10, 0.70), (20, 0.75), (30, 0.752), (40, 0.755)]
    assert still_rising(plateau) is None  # the last gained half a point over step 30
    earlier_best = [(10, 0.70), (20, 0.80), (30, 0.76), (40, 0.79)]
    assert still_rising(earlier_best) is None
    assert still_rising([(10, 0.5)]) is None
    # A tie with an earlier best still counts as the best, and the margin is a parameter.
    tie = [(10, 0.60), (20, 0.70), (30, 0.60), (40, 0.70)]
    assert still_rising(tie) is not None
    assert still_rising(plateau, margin=0.001) is not None
