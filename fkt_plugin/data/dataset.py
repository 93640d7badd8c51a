"""The in-memory form every dataset adapter returns: uint8 images and integer targets."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ImageSplit:
    """Images of one split, kept as uint8 so that augmentation happens on the device.

    Attributes:
        images: ``(N, C, H, W)`` uint8.
        targets: ``(N,)`` int64 class indices; -1 marks an unlabelled image.
    """

    images: torch.Tensor
    targets: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W) uint8, got {tuple(self.images.shape)} "
                             f"{self.images.dtype}")
        if len(self.images) != len(self.targets):
            raise ValueError(f"{len(self.images)} images but {len(self.targets)} targets")

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, index: torch.Tensor) -> ImageSplit:
        """The images and targets at ``index``."""
        return ImageSplit(self.images[index], self.targets[index])


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
        return self.train.images.shape[1]

    def __post_init__(self) -> None:
        for split_name, split in (("train", self.train), ("test", self.test)):
            labelled = split.targets[split.targets >= 0]
            if len(labelled) and int(labelled.max()) >= self.num_classes:
                raise ValueError(
                    f"{split_name} split has label {int(labelled.max())}, outside the "
                    f"{self.num_classes} classes 0..{self.num_classes - 1}"
                )


def channel_stats(images: torch.Tensor, max_images: int = 10_000) -> tuple[tuple[float, ...],
                                                                          tuple[float, ...]]:
    """Per-channel mean and std in [0, 1] of ``(N, C, H, W)`` uint8 images (a seeded sample of
    at most ``max_images``, so that large cached datasets are not read whole)."""
    if len(images) > max_images:
        index = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
        images = images[index[:max_images].sort().values]
    pixels = images.float().div(255).transpose(0, 1).reshape(images.shape[1], -1)
    return tuple(pixels.mean(1).tolist()), tuple(pixels.std(1).tolist())
