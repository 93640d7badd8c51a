"""Any ``<root>/<class>/<image>`` tree (torchvision's ImageFolder layout), plus an optional
folder of unlabelled images for the self-supervised pool.

Images are decoded once at ``data.image_size`` (shorter side resized, centre square cropped)
into the uint8 cache of :mod:`fkt_plugin.data.image_cache`. Without ``data.val_path`` (a second
tree with the same class folders), a seeded stratified ``data.holdout_fraction`` of the tree is
held out as the test split.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fkt_plugin.config import ConfigError
from fkt_plugin.data.dataset import ImageDataset, ImageSplit, channel_stats
from fkt_plugin.data.image_cache import (
    DataFormatError,
    decode_files,
    image_files,
    resize_center_crop,
)
from fkt_plugin.data.registry import DATASETS, DatasetNotFoundError
from fkt_plugin.data.splits import complement, stratified_pick


def class_tree(root: Path, class_names: tuple[str, ...] | None = None
               ) -> tuple[tuple[str, ...], list[Path], list[int]]:
    """Class names (sorted folder names), image files and their class indices of a tree.

    Args:
        root: The folder holding one sub-folder per class.
        class_names: Expected classes (e.g. those of the training tree); a folder outside them
            is an error, a missing one is allowed (a test split may lack a class).

    Raises:
        DatasetNotFoundError: ``root`` has no class folders.
        DataFormatError: A class folder holds no images, or a folder is not a known class.
    """
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        loose = len(image_files(root))
        raise DatasetNotFoundError(
            f"{root} has no class folders (<class>/<image>)"
            + (f"; it holds {loose} images directly: point at its parent?" if loose else "")
        )
    names = tuple(p.name for p in folders) if class_names is None else class_names
    unknown = [p.name for p in folders if p.name not in names]
    if unknown:
        raise DataFormatError(f"{root} has class folders {', '.join(unknown)} that the training "
                              f"tree lacks (classes: {', '.join(names)})")
    files: list[Path] = []
    targets: list[int] = []
    for folder in folders:
        found = image_files(folder)
        if not found:
            raise DataFormatError(f"class folder {folder} holds no images")
        files += found
        targets += [names.index(folder.name)] * len(found)
    return names, files, targets


def require_dir(path: str | None, key: str, what: str) -> Path:
    if path is None:
        raise DatasetNotFoundError(f"set {key} to {what}")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DatasetNotFoundError(f"{key}={path!r} does not exist (expected {what})")
    return folder


def join(*splits: ImageSplit) -> ImageSplit:
    """One split holding the images and targets of several, in order."""
    return ImageSplit(torch.cat([s.images for s in splits]),
                      torch.cat([s.targets for s in splits]))


def holdout(split: ImageSplit, fraction: float, seed: int) -> tuple[ImageSplit, ImageSplit]:
    """A seeded stratified ``(rest, held_out)`` partition of a labelled split."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"data.holdout_fraction={fraction!r} must be in (0, 1)")
    held = stratified_pick(split.targets, fraction, seed)
    return split.subset(complement(held, len(split))), split.subset(held)


@DATASETS.register("folder")
def load_image_folder(train_path: str | None = None, val_path: str | None = None,
                      unlabelled_path: str | None = None, image_size: int | None = None,
                      cache_dir: str | None = None, on_bad_image: str = "skip",
                      holdout_fraction: float = 0.2, split_seed: int = 0,
                      **_: object) -> ImageDataset:
    """Images in ``<train_path>/<class>/``; test split from ``val_path`` or held out."""
    root = require_dir(train_path, "data.train_path", "a folder of <class>/<image> folders")
    if image_size is None:
        raise ConfigError("data.image_size is missing: the folder adapter decodes every image "
                          "to image_size x image_size (e.g. data.image_size=128)")
    preprocess, tag = resize_center_crop(image_size), "short-side-center-crop"
    names, files, targets = class_tree(root)
    common = {"size": image_size, "preprocess": preprocess, "preprocess_name": tag,
              "cache_dir": cache_dir, "on_bad_image": on_bad_image}
    train = decode_files(files, targets, name=f"folder {root.name} train", **common).split
    if val_path is not None:
        val_root = require_dir(val_path, "data.val_path", "a folder of <class>/<image> folders")
        _, val_files, val_targets = class_tree(val_root, names)
        test = decode_files(val_files, val_targets, name=f"folder {val_root.name} test",
                            **common).split
    else:
        train, test = holdout(train, holdout_fraction, split_seed)
    if unlabelled_path is not None:
        extra_root = require_dir(unlabelled_path, "data.unlabelled_path", "a folder of images")
        extra = image_files(extra_root)
        if extra:
            train = join(train, decode_files(extra, [-1] * len(extra),
                                             name=f"folder {extra_root.name} unlabelled",
                                             **common).split)
    mean, std = channel_stats(train.images)
    return ImageDataset(train, test, names, mean, std)
