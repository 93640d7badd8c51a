"""Pseudo-label files (``fkt-cluster``'s output): cluster ids that replace a dataset's targets.

A file is an ``.npz`` holding ``train_labels`` ``(N_train,)`` and ``test_labels`` ``(N_test,)``
int64 cluster ids in the adapter's image order, ``centroids`` ``(k, d)``, the projection the
features went through, and JSON strings: ``dataset`` (the fingerprint of the dataset it was made
for), ``settings`` and ``teacher``. ``data.pseudo_labels=<file>`` on a training recipe trains on
the cluster ids: the number of classes becomes ``k``, and every image of the training split,
unlabelled ones included, carries its cluster's id.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fkt_plugin.data.dataset import ImageDataset, ImageSplit
from fkt_plugin.errors import DataFormatError, MissingPathError

FORMAT = "fkt-plugin pseudo-labels v1"


def fingerprint(dataset: ImageDataset, name: str) -> dict[str, Any]:
    """What identifies a loaded dataset: its name, split sizes, image shape and a digest of its
    targets and of a sample of its images (so a file made for another copy or size is
    refused)."""
    digest = hashlib.sha1()
    for split in (dataset.train, dataset.test):
        digest.update(split.targets.numpy().tobytes())
        sample = torch.linspace(0, len(split) - 1, min(16, len(split))).long()
        digest.update(split.read(sample).numpy().tobytes())
    return {"name": name, "train_images": len(dataset.train), "test_images": len(dataset.test),
            "image_shape": list(dataset.train.image_shape), "digest": digest.hexdigest()[:16]}


def save(path: str | Path, train_labels: np.ndarray, test_labels: np.ndarray,
         centroids: np.ndarray, projection: dict[str, np.ndarray], dataset: dict[str, Any],
         settings: dict[str, Any], teacher: dict[str, Any]) -> Path:
    """Writes a pseudo-label file (see the module docstring)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    entries: dict[str, Any] = {
        "format": np.array(FORMAT), "train_labels": train_labels.astype(np.int64),
        "test_labels": test_labels.astype(np.int64), "centroids": centroids.astype(np.float32),
        **{f"projection_{k}": v for k, v in projection.items()},
        "dataset": np.array(json.dumps(dataset)), "settings": np.array(json.dumps(settings)),
        "teacher": np.array(json.dumps(teacher))}
    with open(path, "wb") as handle:  # np.savez would append .npz to another suffix
        np.savez(handle, **entries)
    return path


def load(path: str | Path) -> dict[str, Any]:
    """Reads a pseudo-label file: arrays as arrays, the JSON entries as dicts.

    Raises:
        MissingPathError: No such file.
        DataFormatError: Not a pseudo-label file written by ``fkt-cluster``.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingPathError(f"data.pseudo_labels={str(path)!r} does not exist; make one with "
                               "fkt-cluster run_dir=<teacher run> k=<int> out=<file.npz>")
    try:
        with np.load(path, allow_pickle=False) as stored:
            content = {key: stored[key] for key in stored.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        # A truncated copy or a file of another kind: numpy's zip reader fails in any of these.
        raise DataFormatError(f"data.pseudo_labels={str(path)!r} is not a readable pseudo-label "
                              f"file ({type(err).__name__}: {err}); make it again with "
                              "fkt-cluster run_dir=<teacher run> k=<int> out=<file.npz>") from None
    if str(content.get("format", "")) != FORMAT:
        raise DataFormatError(f"{path} is not a pseudo-label file written by fkt-cluster "
                              f"(format {str(content.get('format', 'missing'))!r})")
    for key in ("dataset", "settings", "teacher"):
        content[key] = json.loads(str(content[key]))
    return content


def cluster_ids(dataset: ImageDataset, name: str, path: str | Path) -> torch.Tensor:
    """``(N_train,)`` cluster ids of the training split, from a file made for this dataset
    (guided batches: the targets stay the dataset's).

    Raises:
        DataFormatError: The file was made for another dataset, copy or size.
    """
    content = _checked(dataset, name, path)
    k = int(content["centroids"].shape[0])
    return _relabel(dataset.train, content["train_labels"], k, path).targets


def apply(dataset: ImageDataset, name: str, path: str | Path) -> ImageDataset:
    """The dataset with its targets replaced by the file's cluster ids (``k`` classes).

    Raises:
        DataFormatError: The file was made for another dataset, copy or size (the message
            names what differs).
    """
    content = _checked(dataset, name, path)
    k = int(content["centroids"].shape[0])
    train = _relabel(dataset.train, content["train_labels"], k, path)
    test = _relabel(dataset.test, content["test_labels"], k, path)
    return ImageDataset(train, test, tuple(f"cluster {i}" for i in range(k)), dataset.mean,
                        dataset.std)


def _checked(dataset: ImageDataset, name: str, path: str | Path) -> dict[str, Any]:
    """The file's content, once its fingerprint matches the dataset's."""
    content = load(path)
    made_for, here = content["dataset"], fingerprint(dataset, name)
    differ = [f"{key}: {made_for.get(key)!r} in the file, {here[key]!r} here"
              for key in here if made_for.get(key) != here[key]]
    if differ:
        raise DataFormatError(f"{path} holds pseudo-labels for another dataset ("
                              + "; ".join(differ) + "); run fkt-cluster on this one, or use "
                              "its assign_to= to label it with the same centroids")
    return content


def _relabel(split: ImageSplit, labels: np.ndarray, k: int, path: str | Path) -> ImageSplit:
    if len(labels) != len(split) or len(labels) and not 0 <= labels.min() <= labels.max() < k:
        raise DataFormatError(f"{path}: {len(labels)} cluster ids in 0..{k - 1} expected for "
                              f"{len(split)} images")
    return split.with_targets(torch.from_numpy(labels.astype(np.int64)))
