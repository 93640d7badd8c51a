"""STL-10 (Coates et al., 2011) from its binary files (``stl10_binary/``).

``train_X.bin`` (5,000), ``test_X.bin`` (8,000), ``unlabeled_X.bin`` (100,000): packed uint8
images of 3 planes (R, G, B), each plane 96x96 stored column-major; ``train_y.bin`` and
``test_y.bin``: uint8 labels 1-10. ``fold_indices.txt``: the 10 official training folds.
The unlabelled images join the training split with target -1 (the self-supervised pool).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fkt_plugin.data.dataset import ImageDataset, ImageSplit, channel_stats
from fkt_plugin.data.files import require_dir
from fkt_plugin.data.registry import DATASETS
from fkt_plugin.errors import ConfigError, DataFormatError, DatasetNotFoundError

SIDE = 96
RECORD = 3 * SIDE * SIDE  # 27,648 bytes per image
CLASS_NAMES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship",
               "truck")
NEEDED = ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin")


def read_images(path: Path) -> np.ndarray:
    """``(N, 3, 96, 96)`` upright uint8 images of an STL-10 ``*_X.bin`` file (memory-mapped).

    Raises:
        DataFormatError: The size is not a whole number of 27,648-byte records.
    """
    size = path.stat().st_size
    if size == 0 or size % RECORD:
        raise DataFormatError(f"{path}: {size:,} bytes is not a whole number of "
                              f"{RECORD:,}-byte STL-10 images (truncated or not an STL-10 file)")
    raw = np.memmap(path, dtype=np.uint8, mode="r", shape=(size // RECORD, 3, SIDE, SIDE))
    # Planes are column-major: swapping the last two axes makes them row-major and upright.
    return raw.transpose(0, 1, 3, 2)


def read_labels(path: Path, count: int) -> np.ndarray:
    """0-based int64 labels from an STL-10 ``*_y.bin`` file (stored 1-10)."""
    labels = np.fromfile(path, dtype=np.uint8).astype(np.int64)
    if len(labels) != count:
        raise DataFormatError(f"{path}: {len(labels)} labels for {count} images")
    bad = labels[(labels < 1) | (labels > 10)]
    if len(bad):
        raise DataFormatError(f"{path}: label {int(bad[0])} is outside 1..10 (STL-10 labels "
                              "are 1-based)")
    return labels - 1


def read_folds(path: Path, train_size: int) -> list[np.ndarray]:
    """The 10 official folds: 0-based indices into the training images."""
    folds = [np.array(line.split(), dtype=np.int64)
             for line in path.read_text().splitlines() if line.strip()]
    for i, fold in enumerate(folds):
        if len(fold) and (fold.min() < 0 or fold.max() >= train_size):
            raise DataFormatError(f"{path}: fold {i} has an index outside 0..{train_size - 1}")
    return folds


def find_folder(path: str | None) -> Path:
    """The folder holding the STL-10 binaries: ``path`` itself or its ``stl10_binary`` child."""
    root = require_dir(path, "data.train_path", "the extracted stl10_binary/ folder (STL-10 is "
                       "not downloaded at run time)")
    for folder in (root, root / "stl10_binary"):
        if all((folder / f).is_file() for f in NEEDED):
            return folder
    raise DatasetNotFoundError(f"data.train_path={path!r} holds neither {', '.join(NEEDED)} "
                               "nor a stl10_binary/ folder with them")


@DATASETS.register("stl10")
def load_stl10(train_path: str | None = None, fold: int | None = None,
               **_: object) -> ImageDataset:
    """STL-10: 5,000 labelled + 100,000 unlabelled training images, 8,000 test, 96x96 colour.

    Args:
        train_path: The ``stl10_binary`` folder (or its parent).
        fold: One of the 10 official folds (0-9) as the labelled training images (1,000); the
            other labelled training images are then dropped. None: all 5,000.
    """
    folder = find_folder(train_path)
    train_x = read_images(folder / "train_X.bin")
    train_y = read_labels(folder / "train_y.bin", len(train_x))
    test_x = read_images(folder / "test_X.bin")
    test_y = read_labels(folder / "test_y.bin", len(test_x))
    if fold is not None:
        folds_path = folder / "fold_indices.txt"
        if not folds_path.is_file():
            raise DatasetNotFoundError(f"data.fold={fold} needs {folds_path}")
        folds = read_folds(folds_path, len(train_x))
        if not (isinstance(fold, int) and 0 <= fold < len(folds)):
            raise ConfigError(f"data.fold={fold!r} must be an int in 0..{len(folds) - 1}")
        keep = np.sort(folds[fold])
        train_x, train_y = train_x[keep], train_y[keep]
    parts_x, parts_y = [np.ascontiguousarray(train_x)], [train_y]
    unlabeled = folder / "unlabeled_X.bin"
    if unlabeled.is_file():
        extra = read_images(unlabeled)
        parts_x.append(np.ascontiguousarray(extra))
        parts_y.append(np.full(len(extra), -1, dtype=np.int64))
    train = ImageSplit(torch.from_numpy(np.concatenate(parts_x)),
                       torch.from_numpy(np.concatenate(parts_y)))
    test = ImageSplit(torch.from_numpy(np.ascontiguousarray(test_x)), torch.from_numpy(test_y))
    mean, std = channel_stats(train)
    return ImageDataset(train, test, CLASS_NAMES, mean, std)
