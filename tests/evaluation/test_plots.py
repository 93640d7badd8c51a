"""Training curves: points at optimiser steps, the re-scoring after training left out."""

from __future__ import annotations

from pathlib import Path

from fkt_plugin.evaluation.convergence import still_rising
from fkt_plugin.evaluation.plots import plot_training_curves, read_training_metric


def test_curves_are_per_step_and_skip_the_rescoring_rows(make_cfg, tmp_path: Path) -> None:
    from fkt_plugin.runner import train

    cfg = make_cfg("supervised", "max_epochs=2", "name=curve")
    results = train(cfg)
    metrics = tmp_path / "curve" / "metrics.csv"
    points = read_training_metric(metrics, "val_acc1")
    # results.json says whether the run ended still rising, judged on this same curve.
    assert results["val_still_rising"] == still_rising(points)
    # 1,400 images: 1,260 after validation; batches of 64, last dropped: 19 steps an epoch.
    assert [step for step, _ in points] == [19, 38]
    # The CSV holds one more val_acc1 row: the validation of the selected model after training.
    rows = [line for line in metrics.read_text().splitlines()[1:] if line]
    header = metrics.read_text().splitlines()[0].split(",")
    column = header.index("val_acc1")
    assert sum(1 for row in rows if row.split(",")[column]) == 3
    out = plot_training_curves({"run": {"supervised": metrics}}, "val_acc1",
                               tmp_path / "curves.png")
    assert out.is_file()
