"""Datasets (real on-disk formats), splits and the datamodule."""

from typing import Any

# Importing the adapters registers them in DATASETS.
from fkt_plugin.data import aptos, cifar, fashion_mnist, image_folder, intel, stl10  # noqa: F401
from fkt_plugin.data.datamodule import FKTDataModule
from fkt_plugin.data.dataset import ImageDataset, ImageSplit
from fkt_plugin.data.registry import DATASETS

# The cfg.data keys an adapter may read (each reads those it needs).
LOADER_KEYS = ("train_path", "val_path", "unlabelled_path", "image_size", "cache_dir",
               "on_bad_image", "fold", "holdout_fraction", "split_seed")


def load_dataset(name: str, train_path: str | None = None, **options: Any) -> ImageDataset:
    """Loads a registered dataset from ``train_path`` (or its default location).

    Args:
        name: A name in :data:`DATASETS`.
        train_path: Where the user's copy is.
        options: Other ``cfg.data`` keys of :data:`LOADER_KEYS`.
    """
    return DATASETS[name](train_path=train_path, **options)


__all__ = ["DATASETS", "LOADER_KEYS", "FKTDataModule", "ImageDataset", "ImageSplit",
           "load_dataset"]
