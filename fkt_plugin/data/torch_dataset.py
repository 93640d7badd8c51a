"""The dataset adapters as ordinary map-style ``torch.utils.data.Dataset`` objects, for lightly,
solo-learn and plain PyTorch loops, which transform one image at a time on the CPU.

Each item is ``(image, target)``: a PIL image (what torchvision's and lightly's transforms take)
or the ``(C, H, W)`` uint8 tensor, with the transform applied if one is given; target -1 marks
an unlabelled image. The images are those the adapter decoded (same size, same preprocessing,
e.g. APTOS's border crop), read one at a time from the adapter's cache.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from PIL import Image
from torch.utils.data import Dataset

from fkt_plugin.data.dataset import ImageSplit
from fkt_plugin.data.registry import DATASETS
from fkt_plugin.errors import ConfigError

ImageKind = Literal["pil", "tensor"]
SPLITS = ("train", "labelled", "unlabelled", "test")


class SplitDataset(Dataset[tuple[Any, int]]):
    """One split of a loaded dataset as a map-style dataset.

    Args:
        split: The split (images stay in the adapter's cache; nothing is copied).
        transform: Applied to each image (PIL or tensor, as ``image_kind`` says).
        target_transform: Applied to each int target.
        image_kind: ``"pil"`` (default) or ``"tensor"`` (uint8 ``(C, H, W)``).
    """

    def __init__(self, split: ImageSplit, transform: Callable[[Any], Any] | None = None,
                 target_transform: Callable[[int], Any] | None = None,
                 image_kind: ImageKind = "pil") -> None:
        if image_kind not in ("pil", "tensor"):
            raise ConfigError(f"image_kind={image_kind!r} is not one of 'pil', 'tensor'")
        self.split = split
        self.transform = transform
        self.target_transform = target_transform
        self.image_kind = image_kind

    def __len__(self) -> int:
        return len(self.split)

    @property
    def targets(self) -> list[int]:
        """Every item's target, in order (-1: unlabelled), as torchvision datasets have it."""
        return self.split.targets.tolist()

    def __getitem__(self, index: int) -> tuple[Any, int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self)} images")
        image: Any = self.split.read(index)
        if self.image_kind == "pil":
            array = image.permute(1, 2, 0).numpy()
            image = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
        if self.transform is not None:
            image = self.transform(image)
        target: Any = int(self.split.targets[index])
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target


def split_of(train: ImageSplit, test: ImageSplit, name: str) -> ImageSplit:
    """The images of ``name``: ``train`` (labelled and unlabelled, target -1), ``labelled``,
    ``unlabelled`` (the training images without a label) or ``test``.

    Raises:
        ConfigError: ``name`` is not one of :data:`SPLITS`.
    """
    if name == "test":
        return test
    if name == "train":
        return train
    if name == "labelled":
        return train.subset(torch.nonzero(train.targets >= 0).flatten())
    if name == "unlabelled":
        return train.subset(torch.nonzero(train.targets < 0).flatten())
    raise ConfigError(f"split={name!r} is not one of {', '.join(SPLITS)}")


def torch_dataset(name: str, split: str = "train", *, train_path: str | None = None,
                  transform: Callable[[Any], Any] | None = None,
                  target_transform: Callable[[int], Any] | None = None,
                  image_kind: ImageKind = "pil", **options: Any) -> SplitDataset:
    """A registered dataset's split as a map-style dataset.

    Example (lightly)::

        from lightly.data import LightlyDataset
        from lightly.transforms import SimCLRTransform
        from fkt_plugin.data.torch_dataset import torch_dataset

        pool = torch_dataset("aptos", "train", train_path="data/aptos2019", image_size=224)
        dataset = LightlyDataset.from_torch_dataset(pool, SimCLRTransform(input_size=224))

    Args:
        name: A dataset name of :data:`fkt_plugin.data.DATASETS` (``intel``, ``aptos``, ...).
        split: One of :data:`SPLITS`.
        train_path: The dataset's folder in its own layout.
        transform: Per-image transform.
        target_transform: Per-target transform.
        image_kind: ``"pil"`` or ``"tensor"``.
        options: Other adapter options (``val_path``, ``image_size``, ``cache_dir``, ...).
    """
    loaded = DATASETS[name](train_path=train_path, **options)
    return SplitDataset(split_of(loaded.train, loaded.test, split), transform,
                        target_transform, image_kind)
