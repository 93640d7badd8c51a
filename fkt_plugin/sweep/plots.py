"""A sweep's pictures: accuracy against label fraction, validation curves, each pre-training's
kNN accuracy, and a t-SNE of every arm's test features (asked of :mod:`fkt_plugin.evaluation`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fkt_plugin.errors import CheckpointError
from fkt_plugin.evaluation.plots import (
    plot_accuracy_vs_fraction,
    plot_embeddings,
    plot_training_curves,
)
from fkt_plugin.evaluation.protocols import frozen_features, subsample
from fkt_plugin.run_dir import RunDirectory
from fkt_plugin.sweep.plan import Sweep
from fkt_plugin.sweep.report import summarise


def draw(sweep: Sweep, rows: list[dict[str, Any]], embedding: bool = True) -> None:
    """Draws every picture of a sweep under its ``out`` folder (the t-SNE, minutes on a CPU,
    only where ``embedding``)."""
    arms = [str(arm.name) for arm in sweep.cfg.arms]
    summary = summarise(rows, arms, [float(f) for f in sweep.cfg.fractions], "acc1")
    if summary:
        plot_accuracy_vs_fraction({a: {f: c[:2] for f, c in cells.items()}
                                   for a, cells in summary.items()},
                                  sweep.out / "accuracy_vs_fraction.png")
    _plot_curves(sweep)
    _plot_pretraining_knn(sweep)
    if embedding:
        _plot_embedding(sweep)


def _plot_curves(sweep: Sweep) -> None:
    seed = sweep.first_seed
    curves: dict[str, dict[str, Path]] = {}
    for job in sweep.jobs:
        found = sweep.classifier_run(job) if job.seed == seed and sweep.finished(job) else None
        metrics = RunDirectory(found[0]).metrics_csv if found else None
        if metrics is not None and metrics.is_file():
            group = f"{100 * job.fraction:g}% labels, seed {seed}"
            curves.setdefault(group, {})[job.arm.name] = metrics
    if curves:
        plot_training_curves(curves, "val_acc1", sweep.out / "training_curves.png")


def _plot_pretraining_knn(sweep: Sweep) -> None:
    """The online kNN accuracy of each shared pre-training (first seed) against optimiser
    steps: is it still rising when pre-training stops?"""
    lines: dict[str, Path] = {}
    for job in sweep.jobs:
        if job.arm.protocol is None or job.seed != sweep.first_seed:
            continue
        metrics = sweep.folder(job).metrics_csv
        if metrics.is_file():
            lines.setdefault(sweep.run_name(job), metrics)
    if lines:
        plot_training_curves({f"pre-training, seed {sweep.first_seed}": lines}, "val_knn_acc1",
                             sweep.out / "pretraining_knn.png")


def _plot_embedding(sweep: Sweep) -> None:
    emb = sweep.cfg.embedding
    fraction = float(emb.fraction if emb.fraction is not None else min(sweep.cfg.fractions))
    seed = int(emb.seed) if emb.seed is not None else sweep.first_seed
    jobs = [job for job in sweep.jobs
            if job.fraction == fraction and job.seed == seed and sweep.finished(job)]
    picture = sweep.out / "embedding.png"
    # t-SNE takes minutes on a CPU: redraw only when a result behind the picture is newer.
    if picture.is_file() and all(sweep.eval_file(job).stat().st_mtime < picture.stat().st_mtime
                                 for job in jobs):
        return
    panels: dict[str, tuple[Any, Any]] = {}
    cache: dict[tuple[Path, str], Any] = {}
    missing: list[str] = []
    for job in jobs:
        run_dir, checkpoint = sweep.classifier_run(job) or (
            sweep.run_dir(job), sweep.cfg.eval.checkpoint)
        # A sweep resumed from its committed result files has no checkpoints: the arms whose
        # network is not on this machine are left out of the picture, not the whole report.
        try:
            RunDirectory(run_dir).checkpoint(checkpoint)
        except CheckpointError:
            missing.append(str(job.arm.name))
            continue
        if (run_dir, checkpoint) not in cache:
            cache[run_dir, checkpoint] = frozen_features(run_dir, checkpoint, splits=("test",))
        feats = cache[run_dir, checkpoint]
        test_x, test_y = feats.test
        panels[job.arm.name] = subsample(test_x, test_y, emb.samples)
        class_names = feats.dataset.class_names
    if missing:
        sweep.log(f"embedding.png: {', '.join(missing)} left out (checkpoint not on this "
                  "machine; rerun with the checkpoints to draw them)")
    if panels:
        plot_embeddings(panels, class_names, picture)
