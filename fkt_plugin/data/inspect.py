"""Looking at a dataset as the plugin reads it: counts, sizes, skipped files, and pictures of
decoded images and of the augmented views a method trains on."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from fkt_plugin.data.dataset import ImageDataset, ImageSplit


def describe(dataset: ImageDataset, name: str, notes: Sequence[str] = ()) -> str:
    """A text summary: images per split and class (labelled, unlabelled), size, statistics."""
    lines = [f"dataset {name}: {dataset.num_classes} classes, {dataset.num_channels} channel(s), "
             f"images {dataset.train.image_shape[1]}x{dataset.train.image_shape[2]} px",
             f"channel mean {tuple(round(m, 4) for m in dataset.mean)}, "
             f"std {tuple(round(s, 4) for s in dataset.std)}"
             + (", ordinal grades (quadratic weighted kappa reported)" if dataset.ordinal
                else "")]
    width = max(len(n) for n in dataset.class_names)
    header = f"  {'class':<{width}}  {'train':>8}  {'test':>8}"
    lines += ["", header, "  " + "-" * (len(header) - 2)]
    train_counts = torch.bincount(dataset.train.targets[dataset.train.targets >= 0],
                                  minlength=dataset.num_classes)
    test_counts = torch.bincount(dataset.test.targets[dataset.test.targets >= 0],
                                 minlength=dataset.num_classes)
    for c, class_name in enumerate(dataset.class_names):
        lines.append(f"  {class_name:<{width}}  {int(train_counts[c]):>8,}  "
                     f"{int(test_counts[c]):>8,}")
    unlabelled = int((dataset.train.targets < 0).sum())
    lines.append(f"  {'unlabelled':<{width}}  {unlabelled:>8,}  {0:>8,}")
    lines.append(f"  {'total':<{width}}  {len(dataset.train):>8,}  {len(dataset.test):>8,}")
    if notes:
        lines += ["", "skipped or unused files:"] + [f"  {note}" for note in notes]
    else:
        lines += ["", "no file was skipped"]
    return "\n".join(lines)


def load_with_notes(loader: Any, **options: Any) -> tuple[ImageDataset, list[str]]:
    """Calls a dataset loader, collecting its warnings (skipped files) instead of printing."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = loader(**options)
    return dataset, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def sample_grid(dataset: ImageDataset, path: str | Path, per_class: int = 4) -> Path:
    """The first ``per_class`` labelled training images of every class, titled by label."""
    from fkt_plugin.evaluation.plots import plot_image_grid

    split: ImageSplit = dataset.train
    picks = []
    for c in range(dataset.num_classes):
        picks += (split.targets == c).nonzero().flatten()[:per_class].tolist()
    images = split.read(torch.tensor(picks, dtype=torch.int64)).float() / 255
    titles = [dataset.class_names[int(split.targets[i])] for i in picks]
    return plot_image_grid(images, titles, Path(path), cols=per_class * min(2, dataset.num_classes))


def views_grid(dataset: ImageDataset, pipelines: Sequence[DictConfig], path: str | Path,
               count: int = 8, seed: int = 0) -> Path:
    """``count`` training images, each followed by its augmented views, un-normalised."""
    from fkt_plugin.augmentation import DeviceAugmentation
    from fkt_plugin.evaluation.plots import plot_image_grid

    torch.manual_seed(seed)
    augment = DeviceAugmentation(pipelines, dataset.mean, dataset.std)
    index = torch.randperm(len(dataset.train))[:count]
    originals = dataset.train.read(index)
    views = augment(originals)
    mean = torch.tensor(dataset.mean).view(1, -1, 1, 1)
    std = torch.tensor(dataset.std).view(1, -1, 1, 1)
    size = views[0].shape[-1]
    resized = torch.nn.functional.interpolate(originals.float() / 255, size=(size, size),
                                              mode="bilinear", antialias=True)
    tiles, titles = [], []
    for i in range(len(index)):
        target = int(dataset.train.targets[index[i]])
        label = dataset.class_names[target] if target >= 0 else "unlabelled"
        tiles.append(resized[i])
        titles.append(label)
        for v, view in enumerate(views):
            tiles.append((view[i:i + 1] * std + mean).clamp(0, 1)[0])
            titles.append(f"view {v}")
    return plot_image_grid(torch.stack(tiles), titles, Path(path), cols=1 + len(views))
