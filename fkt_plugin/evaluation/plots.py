"""Pictures of results: confusion matrices, feature embeddings, accuracy vs label fraction,
training curves. Each function writes one PNG and returns its path."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on training machines

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from fkt_plugin.tables import read_rows  # noqa: E402

# Confusion matrices of many classes (cluster ids) keep a bounded size and drop the class names.
MAX_FIGURE_INCHES = 16.0
MAX_NAMED_CLASSES = 30


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], class_names: Sequence[str],
                          path: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix (true class by row), counts written in the cells."""
    counts = np.asarray(matrix)
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    # Capped: a run on k = 1,000 cluster ids asked for a 502-inch figure and ran out of memory.
    size = min(max(4.0, 0.5 * len(class_names) + 2), MAX_FIGURE_INCHES)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    if len(class_names) <= MAX_NAMED_CLASSES:
        ticks = range(len(class_names))
        ax.set_xticks(ticks, class_names, rotation=60, ha="right")
        ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(class_names) <= 20:
        for i, j in np.ndindex(counts.shape):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black")
    ax.set_title(title)
    return save_figure(fig, path)


def embed_2d(features: torch.Tensor, seed: int = 0) -> np.ndarray:
    """``(N, 2)`` embedding of ``(N, D)`` features: UMAP where installed, else t-SNE."""
    x = features.numpy()
    try:
        import umap

        return umap.UMAP(random_state=seed).fit_transform(x)
    except ImportError:
        from sklearn.manifold import TSNE

        perplexity = min(30.0, max(2.0, (len(x) - 1) / 3))
        return TSNE(init="pca", perplexity=perplexity, random_state=seed).fit_transform(x)


def plot_embeddings(panels: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
                    class_names: Sequence[str], path: str | Path, seed: int = 0) -> Path:
    """One 2-D embedding per panel (title → ``(features (N, D), labels (N,))``), by class."""
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 4.2 * rows), squeeze=False)
    cmap = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    for ax, (title, (feats, labels)) in zip(axes.flat, panels.items(), strict=False):
        points = embed_2d(feats, seed)
        for c, name in enumerate(class_names):
            mask = labels.numpy() == c
            ax.scatter(points[mask, 0], points[mask, 1], s=3, color=cmap(c % cmap.N), label=name)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(markerscale=4, fontsize=7, loc="best")
    return save_figure(fig, path)


def plot_accuracy_vs_fraction(summary: Mapping[str, Mapping[float, tuple[float, float]]],
                              path: str | Path, metric: str = "test accuracy (%)") -> Path:
    """Mean ± std per arm (arm → fraction → (mean, std)) against the label fraction, log x."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for arm, points in summary.items():
        fractions = sorted(points)
        means = [points[f][0] for f in fractions]
        stds = [points[f][1] for f in fractions]
        ax.errorbar([100 * f for f in fractions], means, yerr=stds, marker="o", capsize=3,
                    label=arm)
    ax.set_xscale("log")
    ax.set_xlabel("labelled training images (%)")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def read_training_metric(metrics_csv: str | Path, key: str) -> list[tuple[int, float]]:
    """``(optimiser step, value)`` pairs of one key logged during training, in order.

    The validation and test that follow training log one more row each, at an epoch no
    training row has: those rows are left out (they re-score the selected model; they are not
    a point of the curve).
    """
    rows = read_rows(metrics_csv)
    trained = {row["epoch"] for row in rows if row.get("train_loss") not in (None, "")}
    # Lightning logs an epoch's end at the index of its last step: steps done = index + 1.
    return [(int(float(row["step"])) + 1, float(row[key])) for row in rows
            if row.get(key) not in (None, "") and row["epoch"] in trained]


def plot_training_curves(curves: Mapping[str, Mapping[str, str | Path]], key: str,
                         path: str | Path) -> Path:
    """One panel per group (group → line label → metrics.csv), ``key`` against optimiser
    steps (arms whose epochs differ in size compare by steps, not epochs)."""
    cols = min(3, len(curves))
    rows = math.ceil(len(curves) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.8 * rows), squeeze=False)
    for ax, (group, lines) in zip(axes.flat, curves.items(), strict=False):
        for label, metrics_csv in lines.items():
            points = read_training_metric(metrics_csv, key)
            if points:
                ax.plot(*zip(*points, strict=True), marker=".", label=label)
        ax.set_title(group)
        ax.set_xlabel("optimiser steps")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(curves):]:
        ax.axis("off")
    return save_figure(fig, path)


def plot_image_grid(images: torch.Tensor, titles: Sequence[str], path: str | Path,
                    cols: int) -> Path:
    """``(N, C, H, W)`` images in [0, 1] on a grid of ``cols`` columns, each titled."""
    rows = math.ceil(len(images) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title in zip(axes.flat, images, titles, strict=False):
        picture = image.permute(1, 2, 0).numpy()
        ax.imshow(picture[..., 0] if picture.shape[2] == 1 else picture,
                  cmap="gray" if picture.shape[2] == 1 else None, vmin=0, vmax=1)
        ax.set_title(title, fontsize=7)
    return save_figure(fig, path)
