"""Datasets (real on-disk formats), splits and the datamodule."""

from fkt_plugin.data import fashion_mnist  # noqa: F401  (registers the adapter)
from fkt_plugin.data.datamodule import FKTDataModule
from fkt_plugin.data.dataset import ImageDataset, ImageSplit
from fkt_plugin.data.registry import DATASETS, DatasetNotFoundError


def load_dataset(name: str, train_path: str | None = None) -> ImageDataset:
    """Loads a registered dataset from ``train_path`` (or its default location)."""
    return DATASETS[name](train_path=train_path)


__all__ = ["DATASETS", "DatasetNotFoundError", "FKTDataModule", "ImageDataset", "ImageSplit",
           "load_dataset"]
