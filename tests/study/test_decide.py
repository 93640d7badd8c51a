"""The recommendation follows from the paired intervals alone (checked against scipy's paired
t-test, an independent oracle)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from fkt_plugin.study.decide import recommend


def rows_of(scores: dict[str, list[float]], labels: int = 600) -> list[dict]:
    return [{"arm": arm, "label_fraction": 1.0, "seed": seed, "acc1": value / 100,
             "labels_total": labels}
            for arm, values in scores.items() for seed, value in enumerate(values)]


def oracle(scores: dict[str, list[float]], seconds: dict[str, float]) -> tuple[str, list[str],
                                                                              str]:
    """best, tied and chosen by scipy's paired t-interval."""
    best = max(scores, key=lambda arm: np.mean(scores[arm]))
    tied = [best] + [arm for arm in scores if arm != best and stats.ttest_rel(
        scores[best], scores[arm]).confidence_interval(0.95).low <= 0]
    chosen = best if len(tied) == 1 else min(tied, key=lambda arm: seconds[arm])
    return best, tied, chosen


SECONDS = {"fkt_joint": 300.0, "supervised": 40.0, "simclr → linear": 250.0}


@pytest.mark.parametrize(("scores", "opening"), [
    # fkt_joint above both others on every seed by a steady margin: a clear winner.
    ({"fkt_joint": [90.1, 91.0, 89.7, 90.5, 90.9], "supervised": [85.0, 86.2, 84.9, 85.1, 86.0],
      "simclr → linear": [80.3, 81.0, 79.2, 80.8, 80.1]},
     "At 600 labels, `fkt_joint` gives the best classifier"),
    # Differences that change sign across seeds: nothing is distinguishable; the cheapest wins.
    ({"fkt_joint": [88.0, 85.0, 90.0, 86.0, 87.5], "supervised": [86.0, 88.0, 87.0, 88.5, 86.0],
      "simclr → linear": [87.0, 86.5, 88.0, 87.0, 87.9]},
     "At 600 labels, no method is distinguishable from `"),
    # supervised and fkt_joint tie, simclr → linear is clearly below.
    ({"fkt_joint": [88.0, 85.0, 90.0, 86.0, 87.5], "supervised": [86.0, 88.0, 87.0, 88.5, 86.0],
      "simclr → linear": [70.0, 71.0, 69.5, 70.2, 70.9]},
     "At 600 labels, `supervised` cannot be told apart from `fkt_joint`"),
])
def test_the_recommendation_follows_from_the_paired_intervals(
        scores: dict[str, list[float]], opening: str) -> None:
    answer = recommend(rows_of(scores), list(scores), 1.0, SECONDS)
    assert answer is not None
    best, tied, chosen = oracle(scores, SECONDS)
    assert (answer.best, answer.tied, answer.chosen) == (best, tied, chosen)
    for arm, difference in answer.against_best.items():
        interval = stats.ttest_rel(scores[best], scores[arm]).confidence_interval(0.95)
        assert difference.low == pytest.approx(interval.low)
        assert difference.high == pytest.approx(interval.high)
    sentence = answer.sentence()
    assert sentence.startswith(opening), sentence
    assert "(5 seeds" in sentence
    assert answer.clear or sentence.endswith(f"use `{chosen}`.")


def test_no_recommendation_before_every_arm_has_two_seeds() -> None:
    scores = {"fkt_joint": [90.0, 91.0], "supervised": [85.0]}
    assert recommend(rows_of(scores), list(scores), 1.0, SECONDS) is None
    assert recommend(rows_of(scores), [*scores, "simclr → linear"], 1.0, SECONDS) is None
