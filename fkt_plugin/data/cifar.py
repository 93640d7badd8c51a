"""CIFAR-10 and CIFAR-100 (Krizhevsky, 2009) from their python pickle batches.

``cifar-10-batches-py/``: ``data_batch_1..5``, ``test_batch``, ``batches.meta``;
``cifar-100-python/``: ``train``, ``test``, ``meta``. Each batch is a pickled dict whose ``data``
rows hold 1,024 red, then green, then blue values, each plane row-major. The original files were
pickled by Python 2 (keys are ``bytes`` when read with ``encoding="bytes"``), files written by
Python 3 have ``str`` keys: both are accepted.

A pickle can name any importable function for the reader to call, so a crafted file runs code
under ``pickle.load``. Batches are read by :class:`CifarUnpickler`, which admits only the names
CIFAR's files use (numpy's array reconstruction, dtypes, and the codec Python 3 writes bytes
with) and refuses the file, unread, on any other.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fkt_plugin.data.dataset import ImageDataset, ImageSplit, channel_stats
from fkt_plugin.data.files import require_dir
from fkt_plugin.data.registry import DATASETS
from fkt_plugin.errors import DataFormatError, DatasetNotFoundError

LAYOUTS: dict[str, dict[str, Any]] = {
    "cifar10": {"folder": "cifar-10-batches-py", "labels": "labels", "names": "label_names",
                "meta": "batches.meta", "classes": 10,
                "train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
    "cifar100": {"folder": "cifar-100-python", "labels": "fine_labels",
                 "names": "fine_label_names", "meta": "meta", "classes": 100,
                 "train": ["train"], "test": ["test"]},
}


# The globals CIFAR's pickles reference: numpy arrays (numpy 1 and 2 module names) and bytes as
# written by Python 3's protocol 2.
ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
})


class CifarUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS`: plain containers, strings,
    numbers and numpy arrays load; a reference to anything else (``os.system``, ``eval``, a
    class with a custom ``__reduce__``) raises before it is called."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"it references {module}.{name}, which a CIFAR batch "
                                         "never does (refused without running it)")
        return super().find_class(module, name)


def load_pickle(path: Path) -> Any:
    """Reads a CIFAR pickle with :class:`CifarUnpickler` (Python 2 strings as bytes).

    Raises:
        DataFormatError: Not a pickle, or one that references a name CIFAR's files do not.
    """
    try:
        with open(path, "rb") as handle:
            return CifarUnpickler(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError) as err:
        raise DataFormatError(f"{path} is not a CIFAR python batch (pickle): {err}") from None


def _str_keys(batch: dict[Any, Any]) -> dict[str, Any]:
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}


def read_batch(path: Path, labels_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch → ``(N, 3, 32, 32)`` uint8 images and ``(N,)`` int64 labels.

    Raises:
        DataFormatError: Not a pickle, keys missing, wrong row length, or a label out of range.
    """
    batch = load_pickle(path)
    if not isinstance(batch, dict):
        raise DataFormatError(f"{path} holds a {type(batch).__name__}, not a CIFAR batch dict")
    batch = _str_keys(batch)
    missing = [k for k in ("data", labels_key) if k not in batch]
    if missing:
        raise DataFormatError(f"{path} lacks the keys {', '.join(missing)} (has "
                              f"{', '.join(sorted(batch))}): is it a CIFAR-"
                              f"{num_classes} python batch?")
    data = np.asarray(batch["data"], dtype=np.uint8)
    labels = np.asarray(batch[labels_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072:
        raise DataFormatError(f"{path}: data has shape {data.shape}, expected (N, 3072)")
    if len(labels) != len(data):
        raise DataFormatError(f"{path}: {len(data)} images but {len(labels)} labels")
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if len(bad):
        raise DataFormatError(f"{path}: label {int(bad[0])} is outside 0..{num_classes - 1}")
    return data.reshape(-1, 3, 32, 32), labels


def find_folder(path: str | None, layout: dict[str, Any], name: str) -> Path:
    """The folder holding the batches: ``path`` itself or its ``cifar-*-python`` child."""
    root = require_dir(path, "data.train_path",
                       f"the extracted {layout['folder']}/ folder of {name} (from the python "
                       "version archive on the CIFAR page; it is not downloaded at run time)")
    for folder in (root, root / layout["folder"]):
        if all((folder / f).is_file() for f in layout["train"] + layout["test"]):
            return folder
    expected = ", ".join(layout["train"] + layout["test"])
    raise DatasetNotFoundError(f"data.train_path={path!r} holds neither the {name} batches "
                               f"({expected}) nor a {layout['folder']}/ folder with them")


def load_cifar(name: str, train_path: str | None) -> ImageDataset:
    layout = LAYOUTS[name]
    folder = find_folder(train_path, layout, name)
    splits = {}
    for split in ("train", "test"):
        parts = [read_batch(folder / f, layout["labels"], layout["classes"])
                 for f in layout[split]]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        splits[split] = ImageSplit(torch.from_numpy(images), torch.from_numpy(labels))
    names = tuple(str(i) for i in range(layout["classes"]))
    meta_path = folder / layout["meta"]
    if meta_path.is_file():
        meta = load_pickle(meta_path)
        meta = _str_keys(meta) if isinstance(meta, dict) else {}
        if layout["names"] in meta:
            names = tuple(n.decode() if isinstance(n, bytes) else str(n)
                          for n in meta[layout["names"]])
    mean, std = channel_stats(splits["train"])
    return ImageDataset(splits["train"], splits["test"], names, mean, std)


@DATASETS.register("cifar10")
def load_cifar10(train_path: str | None = None, **_: object) -> ImageDataset:
    """CIFAR-10: 50,000 + 10,000 colour 32x32 images of 10 classes (python pickle batches)."""
    return load_cifar("cifar10", train_path)


@DATASETS.register("cifar100")
def load_cifar100(train_path: str | None = None, **_: object) -> ImageDataset:
    """CIFAR-100: 50,000 + 10,000 colour 32x32 images of 100 fine classes."""
    return load_cifar("cifar100", train_path)
