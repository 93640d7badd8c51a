"""The Intel and APTOS adapters inside solo-learn: ``data.dataset=intel|aptos`` with
``data.train_path`` (and, for Intel, ``data.val_path``) naming the dataset's own folder.

solo-learn has no plugin API for datasets, so :func:`register_datasets` wraps the narrowest names
its scripts look up, each falling through to solo-learn's own code for every other dataset:

- ``solo.args.{pretrain,linear}``: ``_SUPPORTED_DATASETS`` and ``_N_CLASSES_PER_DATASET``
  gain the two names; ``parse_cfg`` also fills each pretraining pipeline's ``mean``/``std``
  (which solo-learn's ``build_transform_pipeline`` reads for datasets it has no statistics of)
  with the training images' own channel statistics.
- ``solo.data.pretrain_dataloader.prepare_datasets``: the whole training pool (labelled images
  and, with target -1, Intel's ``seg_pred`` / APTOS's ``test_images``) through solo-learn's own
  crop pipeline.
- ``solo.data.classification_dataloader.prepare_data``: the labelled training images and the
  test split (Intel ``seg_test``; APTOS a stratified held-out share) for the online classifier,
  kNN and ``main_linear.py``, normalised with the same statistics.

The images are those ``fkt-train`` reads (decoded once into the adapter's cache, APTOS with its
dark-border crop), served one at a time by :class:`~fkt_plugin.data.torch_dataset.SplitDataset`.
The wrappers are installed before solo-learn's ``main_pretrain.py`` / ``main_linear.py`` import
these names, which is what ``python -m fkt_plugin.solo`` does.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

import torch
from omegaconf import DictConfig, open_dict
from torch.utils.data import Dataset
from torchvision import transforms

from fkt_plugin.data.aptos import CLASS_NAMES as APTOS_CLASSES
from fkt_plugin.data.dataset import ImageDataset, ImageSplit
from fkt_plugin.data.intel import NUM_CLASSES as INTEL_CLASSES
from fkt_plugin.data.registry import DATASETS
from fkt_plugin.data.splits import stratified_pick
from fkt_plugin.data.torch_dataset import SplitDataset, split_of
from fkt_plugin.errors import ConfigError

NUM_CLASSES = {"intel": INTEL_CLASSES, "aptos": len(APTOS_CLASSES)}
# The classifier's input size: the crop size of the shipped pretraining recipes (and of
# fkt-train's), so that the linear probe sees what the backbone was trained on.
CLASSIFICATION_SIZE = {"intel": 128, "aptos": 224}
# solo-learn draws its data_fraction subsets with this seed (scikit-learn's random_state).
FRACTION_SEED = 42
_ARGS_MODULES = ("solo.args.pretrain", "solo.args.linear")
_REGISTERED = "_fkt_plugin_registered"


@functools.lru_cache(maxsize=4)
def load(name: str, train_path: str, val_path: str | None) -> ImageDataset:
    """The dataset ``name`` from its folder (decoded once per process, cached on disk)."""
    options = {"val_path": val_path} if name == "intel" and val_path else {}
    return DATASETS[name](train_path=train_path, **options)


def _require_path(name: str, path: Any) -> str:
    if path is None:
        raise ConfigError(f"data.dataset={name} needs data.train_path: the dataset's folder in "
                          "its own layout (Intel: the folder holding seg_train/; APTOS: the "
                          "folder holding train.csv and train_images/)")
    return str(path)


def _fraction(split: ImageSplit, fraction: float) -> ImageSplit:
    """solo-learn's ``data.fraction``: a seeded stratified share of the labelled images (the
    unlabelled ones, target -1, all stay)."""
    if fraction <= 0:
        return split
    if fraction >= 1:
        raise ConfigError(f"data.fraction={fraction} must be < 1 (or -1 for all images), as "
                          "solo-learn requires")
    kept = stratified_pick(split.targets, fraction, FRACTION_SEED)
    unlabelled = torch.nonzero(split.targets < 0).flatten()
    return split.subset(torch.cat([kept, unlabelled]).sort().values)


class IndexedDataset(Dataset[tuple[Any, ...]]):
    """``(index, image, target)`` items, the form solo-learn's pretraining loop expects."""

    def __init__(self, dataset: SplitDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        return (index, *self.dataset[index])


def _parse_cfg(original: Callable[[DictConfig], DictConfig], pretrain: bool
               ) -> Callable[[DictConfig], DictConfig]:
    @functools.wraps(original)
    def parse_cfg(cfg: DictConfig) -> DictConfig:
        name = cfg.data.dataset
        if name in NUM_CLASSES:
            if cfg.data.get("format", "image_folder") != "image_folder":
                raise ConfigError(f"data.format={cfg.data.format} is not available for "
                                  f"data.dataset={name}: use image_folder (the default)")
            if pretrain:
                # The pool and its statistics do not depend on val_path: the same cache entry
                # as prepare_datasets below, so the dataset is loaded once.
                data = load(name, _require_path(name, cfg.data.get("train_path")), None)
                with open_dict(cfg):
                    for pipeline in cfg.augmentations:
                        pipeline.setdefault("mean", list(data.mean))
                        pipeline.setdefault("std", list(data.std))
        return original(cfg)

    return parse_cfg


def _prepare_datasets(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def prepare_datasets(dataset: str, transform: Callable[[Any], Any],
                         train_data_path: Any = None, data_format: str = "image_folder",
                         no_labels: bool = False, download: bool = True,
                         data_fraction: float = -1.0) -> Any:
        if dataset not in NUM_CLASSES:
            return original(dataset, transform, train_data_path=train_data_path,
                            data_format=data_format, no_labels=no_labels, download=download,
                            data_fraction=data_fraction)
        data = load(dataset, _require_path(dataset, train_data_path), None)
        pool = data.train
        if no_labels:
            pool = pool.with_targets(torch.full_like(pool.targets, -1))
        else:
            pool = _fraction(pool, data_fraction)
        return IndexedDataset(SplitDataset(pool, transform))

    return prepare_datasets


def _classification_transforms(name: str, data: ImageDataset, auto_augment: bool
                               ) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    size = CLASSIFICATION_SIZE[name]
    normalise = transforms.Normalize(data.mean, data.std)
    if auto_augment:
        from timm.data import create_transform  # solo-learn's own dependency, as it does

        # RandAugment disables timm's colour jitter, as in solo-learn's call.
        train: Callable[[Any], Any] = create_transform(
            input_size=size, is_training=True, auto_augment="rand-m9-mstd0.5-inc1",
            interpolation="bicubic", re_prob=0.25, re_mode="pixel", re_count=1, mean=data.mean,
            std=data.std)
    else:
        train = transforms.Compose([transforms.RandomResizedCrop(size, scale=(0.08, 1.0)),
                                    transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                                    normalise])
    return train, transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size),
                                      transforms.ToTensor(), normalise])


def _prepare_data(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def prepare_data(dataset: str, train_data_path: Any = None, val_data_path: Any = None,
                     data_format: str = "image_folder", batch_size: int = 64,
                     num_workers: int = 4, download: bool = True, data_fraction: float = -1.0,
                     auto_augment: bool = False) -> Any:
        if dataset not in NUM_CLASSES:
            return original(dataset, train_data_path=train_data_path,
                            val_data_path=val_data_path, data_format=data_format,
                            batch_size=batch_size, num_workers=num_workers, download=download,
                            data_fraction=data_fraction, auto_augment=auto_augment)
        data = load(dataset, _require_path(dataset, train_data_path),
                    None if val_data_path is None else str(val_data_path))
        t_train, t_val = _classification_transforms(dataset, data, auto_augment)
        labelled = _fraction(split_of(data.train, data.test, "labelled"), data_fraction)
        loaders = importlib.import_module("solo.data.classification_dataloader")
        return loaders.prepare_dataloaders(SplitDataset(labelled, t_train),
                                           SplitDataset(data.test, t_val),
                                           batch_size=batch_size, num_workers=num_workers)

    return prepare_data


def register_datasets() -> None:
    """Makes solo-learn's scripts accept ``data.dataset=intel|aptos`` (idempotent).

    Raises:
        ModuleNotFoundError: solo-learn is not importable (the caller turns it into advice).
    """
    # solo-learn is untyped and optional: its modules are plain objects here.
    pretrain_data: Any = importlib.import_module("solo.data.pretrain_dataloader")
    classification_data: Any = importlib.import_module("solo.data.classification_dataloader")
    if getattr(pretrain_data, _REGISTERED, False):
        return
    for module_name in _ARGS_MODULES:
        args: Any = importlib.import_module(module_name)
        args._SUPPORTED_DATASETS.extend(n for n in NUM_CLASSES
                                        if n not in args._SUPPORTED_DATASETS)
        args._N_CLASSES_PER_DATASET.update(NUM_CLASSES)
        args.parse_cfg = _parse_cfg(args.parse_cfg, pretrain=module_name.endswith("pretrain"))
    pretrain_data.prepare_datasets = _prepare_datasets(pretrain_data.prepare_datasets)
    classification_data.prepare_data = _prepare_data(classification_data.prepare_data)
    setattr(pretrain_data, _REGISTERED, True)
