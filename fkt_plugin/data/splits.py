"""Seeded, stratified splits (the validation split, the labelled fraction, a held-out test
split) and joining splits."""

from __future__ import annotations

from dataclasses import dataclass

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


VAL_LABELS = ("budget", "extra", "none")
"""``data.val_labels``: where the validation split's labels come from (:func:`carve_labels`)."""


@dataclass(frozen=True)
class LabelSplit:
    """The validation split and the training pool of one training split.

    Attributes:
        val_index: ``(V,)`` positions of the validation images (all labelled).
        pool_index: ``(P,)`` positions of the training pool's images, in order.
        pool_targets: ``(P,)`` their targets, -1 where the label is hidden.
    """

    val_index: torch.Tensor
    pool_index: torch.Tensor
    pool_targets: torch.Tensor

    @property
    def counts(self) -> dict[str, int]:
        """Labels used: ``train`` (labelled pool images), ``val`` and ``total``."""
        train = int((self.pool_targets >= 0).sum())
        return {"train": train, "val": len(self.val_index), "total": train + len(self.val_index)}


def carve_labels(targets: torch.Tensor, label_fraction: float, val_fraction: float,
                 val_labels: str, seed: int) -> LabelSplit:
    """Splits a training split into validation images and a pool with hidden labels.

    - ``budget``: ``label_fraction`` of each class keeps its label, and the validation split is
      carved from those labelled images (``val_fraction`` of them, at least one per class), so
      train + validation labels are the budget (Oliver et al., NeurIPS 2018: validation labels
      count).
    - ``extra``: the validation split is ``val_fraction`` of every class with all its labels,
      outside the budget (what papers usually do); of the rest, ``label_fraction`` keeps labels.
    - ``none``: no validation split; ``label_fraction`` of the whole split keeps labels.

    At ``label_fraction`` 1 the three give the same validation split when every class has at
    least one validation image by rounding (``budget`` and ``extra`` draw the same images).

    Raises:
        ConfigError: ``budget`` leaves a class without a training or a validation label, or
            ``val_fraction`` is 0.
    """
    if val_labels == "none":
        every = torch.arange(len(targets))
        return LabelSplit(torch.empty(0, dtype=torch.int64), every,
                          hide_labels(targets, label_fraction, seed))
    if val_labels == "extra":
        val_index = stratified_pick(targets, val_fraction, seed, at_least_one=False)
        pool_index = complement(val_index, len(targets))
        return LabelSplit(val_index, pool_index,
                          hide_labels(targets[pool_index], label_fraction, seed))
    if val_fraction <= 0:
        raise ConfigError("data.val_fraction=0 leaves no validation split: set "
                          "data.val_labels=none to train without one (the last epoch is scored)")
    labelled = stratified_pick(targets, label_fraction, seed)
    val_index = labelled[stratified_pick(targets[labelled], val_fraction, seed)]
    train_labelled = labelled[~torch.isin(labelled, val_index)]
    classes = torch.unique(targets[targets >= 0])
    short = [int(c) for c in classes if not bool((targets[train_labelled] == c).any())]
    if short:
        per_class = torch.bincount(targets[labelled], minlength=int(classes.max()) + 1)
        raise ConfigError(
            f"data.label_fraction={label_fraction} labels {int(per_class[short[0]])} image(s) of "
            f"class {short[0]} ({len(short)} class(es) like it): too few to carve a validation "
            "split from the budget and keep a training label per class (data.val_labels=budget)."
            " Raise data.label_fraction, or set data.val_labels=none (no validation; the last "
            "epoch is scored)"
        )
    pool_index = complement(val_index, len(targets))
    pool_targets = torch.full((len(pool_index),), -1, dtype=targets.dtype)
    keep = torch.isin(pool_index, train_labelled)
    pool_targets[keep] = targets[pool_index[keep]]
    return LabelSplit(val_index, pool_index, pool_targets)
