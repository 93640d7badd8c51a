"""The in-memory form every dataset adapter returns: uint8 images and integer targets.

A split is a view: the images stay in their source tensor (often a memory map of a decode cache
or a dataset file) and a split carved from another (validation, labelled subset, held-out test)
holds only the row numbers it covers, so carving never copies pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ImageSplit:
    """Images of one split, kept as uint8 so that augmentation happens on the device.

    Attributes:
        source: ``(M, C, H, W)`` uint8 tensor the images are read from; shared, never copied,
            by the splits carved from this one.
        targets: ``(N,)`` int64 class indices of the split's images; -1 marks an unlabelled one.
        rows: ``(N,)`` int64 rows of ``source`` that make up the split, in order; None: all
            ``M`` rows (then ``N == M``).
    """

    source: torch.Tensor
    targets: torch.Tensor
    rows: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.source.dtype != torch.uint8 or self.source.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W) uint8, got {tuple(self.source.shape)} "
                             f"{self.source.dtype}")
        count = len(self.source) if self.rows is None else len(self.rows)
        if count != len(self.targets):
            raise ValueError(f"{count} images but {len(self.targets)} targets")

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of every image."""
        channels, height, width = self.source.shape[1:]
        return int(channels), int(height), int(width)

    def read(self, positions: torch.Tensor | slice | int) -> torch.Tensor:
        """The uint8 images at ``positions`` of this split: ``(K, C, H, W)``, or ``(C, H, W)``
        for an int. Only those images are read from the source."""
        if self.rows is None:
            return self.source[positions]
        return self.source[self.rows[positions]]

    def subset(self, index: torch.Tensor) -> ImageSplit:
        """The images and targets at ``index`` (positions in this split), as a view."""
        rows = index if self.rows is None else self.rows[index]
        return ImageSplit(self.source, self.targets[index], rows)

    def with_targets(self, targets: torch.Tensor) -> ImageSplit:
        """The same images with other targets (e.g. labels hidden), as a view."""
        return ImageSplit(self.source, targets, self.rows)

    def materialise(self) -> ImageSplit:
        """A split that owns a contiguous in-memory copy of its images."""
        return ImageSplit(self.read(slice(None)).contiguous(), self.targets.clone())


@dataclass(frozen=True)
class ImageDataset:
    """A dataset's training and test splits plus what a model needs to know about it.

    Attributes:
        train: The training split (the validation split is carved from it later).
        test: The held-out test split, evaluated once at the end of a run.
        class_names: One name per class index.
        mean: Per-channel mean of the training images in [0, 1], for normalisation.
        std: Per-channel standard deviation in [0, 1].
        ordinal: Whether the classes are ordered grades (then quadratic weighted kappa is
            reported beside accuracy).
    """

    train: ImageSplit
    test: ImageSplit
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    ordinal: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_channels(self) -> int:
        return self.train.image_shape[0]

    def __post_init__(self) -> None:
        for split_name, split in (("train", self.train), ("test", self.test)):
            labelled = split.targets[split.targets >= 0]
            if len(labelled) and int(labelled.max()) >= self.num_classes:
                raise ValueError(
                    f"{split_name} split has label {int(labelled.max())}, outside the "
                    f"{self.num_classes} classes 0..{self.num_classes - 1}"
                )


def channel_stats(split: ImageSplit, max_images: int = 10_000) -> tuple[tuple[float, ...],
                                                                       tuple[float, ...]]:
    """Per-channel mean and std in [0, 1] of a split's images (a seeded sample of at most
    ``max_images``, so that large cached datasets are not read whole)."""
    if len(split) > max_images:
        index = torch.randperm(len(split), generator=torch.Generator().manual_seed(0))
        images = split.read(index[:max_images].sort().values)
    else:
        images = split.read(slice(None))
    pixels = images.float().div(255).transpose(0, 1).reshape(images.shape[1], -1)
    return tuple(pixels.mean(1).tolist()), tuple(pixels.std(1).tolist())
