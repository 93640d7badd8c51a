"""Seeded, stratified splits (the validation split, the labelled fraction, a held-out test
split) and joining splits."""

from __future__ import annotations

import numpy as np
import torch

from fkt_plugin.data.dataset import ImageSplit
from fkt_plugin.errors import ConfigError


def stratified_pick(targets: torch.Tensor, fraction: float, seed: int,
                    at_least_one: bool = True) -> torch.Tensor:
    """Picks ``round(fraction * n_c)`` indices of every class ``c`` at random.

    Args:
        targets: ``(N,)`` class indices (entries < 0 are never picked).
        fraction: Share of each class to pick, in [0, 1].
        seed: Seed of the draw; the same seed and targets give the same indices.
        at_least_one: Pick one image of a class whose share rounds to zero.

    Returns:
        Sorted ``(M,)`` int64 indices into ``targets``.
    """
    rng = np.random.default_rng(seed)
    labels = targets.numpy()
    picked = []
    for cls in np.unique(labels[labels >= 0]):
        members = np.flatnonzero(labels == cls)
        count = round(fraction * len(members))
        if at_least_one and fraction > 0:
            count = max(count, 1)
        picked.append(rng.choice(members, size=count, replace=False))
    if not picked:
        return torch.empty(0, dtype=torch.int64)
    return torch.from_numpy(np.sort(np.concatenate(picked))).long()


def complement(indices: torch.Tensor, size: int) -> torch.Tensor:
    """The indices in ``range(size)`` that ``indices`` lacks, sorted."""
    keep = torch.ones(size, dtype=torch.bool)
    keep[indices] = False
    return keep.nonzero().flatten()


def hide_labels(targets: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """A copy of ``targets`` in which all but a stratified ``fraction`` per class become -1."""
    labelled = stratified_pick(targets, fraction, seed)
    hidden = torch.full_like(targets, -1)
    hidden[labelled] = targets[labelled]
    return hidden


def class_weights(targets: torch.Tensor, num_classes: int) -> list[float]:
    """Inverse-frequency weights of the labelled ``targets``, with mean 1 over the classes
    present (a class without labelled images gets weight 0)."""
    counts = torch.bincount(targets[targets >= 0], minlength=num_classes).float()
    weights = torch.where(counts > 0, 1.0 / counts.clamp_min(1), torch.zeros(()))
    return (weights * (counts > 0).sum() / weights.sum()).tolist()


def join(*splits: ImageSplit) -> ImageSplit:
    """One split holding the images and targets of several, in order (a copy in memory)."""
    return ImageSplit(torch.cat([s.read(slice(None)) for s in splits]),
                      torch.cat([s.targets for s in splits]))


def holdout(split: ImageSplit, fraction: float, seed: int) -> tuple[ImageSplit, ImageSplit]:
    """A seeded stratified ``(rest, held_out)`` partition of a labelled split, as views.

    Raises:
        ConfigError: ``fraction`` is not in (0, 1) (it is ``data.holdout_fraction``).
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"data.holdout_fraction={fraction!r} must be in (0, 1)")
    held = stratified_pick(split.targets, fraction, seed)
    return split.subset(complement(held, len(split))), split.subset(held)
