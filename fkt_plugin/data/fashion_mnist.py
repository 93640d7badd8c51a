"""Fashion-MNIST (Xiao et al., 2017) from its gzip'd IDX files.

Looked for, in order: an explicit ``data.train_path``, Debian's ``dataset-fashion-mnist``
package, and torchvision's download location; :func:`obtain_fashion_mnist` fetches it.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import torch

from fkt_plugin.data.dataset import ImageDataset, ImageSplit, channel_stats
from fkt_plugin.data.files import data_home
from fkt_plugin.data.registry import DATASETS
from fkt_plugin.errors import DataFormatError, DatasetNotFoundError

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049
HOW_TO_GET = (
    "get it with `make data` (as root on Debian: apt-get install dataset-fashion-mnist, "
    f"which installs {DEBIAN_DIR}), or point data.train_path at a folder holding "
    + ", ".join(sum(FILES.values(), ()))
)


def torchvision_dir() -> Path:
    """Where torchvision's download puts the files: under :func:`data_home`."""
    return data_home() / "FashionMNIST" / "raw"


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Reads a (possibly gzip'd) IDX file: a big-endian header, then uint8 values.

    Args:
        path: The file.
        magic: 2051 for images (count, rows, cols follow) or 2049 for labels (count follows).

    Returns:
        ``(count, rows, cols)`` or ``(count,)`` uint8 array.

    Raises:
        DataFormatError: Wrong magic number, or fewer bytes than the header announces.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as err:
        kind = "gzip" if opener is gzip.open else "IDX"
        raise DataFormatError(f"{path}: cannot be read as {kind} ({err})") from err
    ndim = 3 if magic == IMAGE_MAGIC else 1
    header_len = 4 * (1 + ndim)
    if len(raw) < header_len:
        raise DataFormatError(f"{path}: {len(raw)} bytes is shorter than an IDX header")
    header = np.frombuffer(raw[:header_len], dtype=">u4")
    if int(header[0]) != magic:
        raise DataFormatError(f"{path}: magic number {int(header[0])}, expected {magic} "
                             f"({'images' if magic == IMAGE_MAGIC else 'labels'})")
    shape = tuple(int(v) for v in header[1:])
    expected = int(np.prod(shape))
    body = np.frombuffer(raw, dtype=np.uint8, offset=header_len)
    if body.size != expected:
        raise DataFormatError(f"{path}: header announces {expected} values of shape {shape}, "
                             f"file holds {body.size} (truncated or corrupt)")
    return body.reshape(shape)


def find_fashion_mnist(path: str | os.PathLike[str] | None) -> Path:
    """The folder holding the four Fashion-MNIST files.

    Raises:
        DatasetNotFoundError: An explicit path lacks the files, or no default location has them.
    """
    needed = sum(FILES.values(), ())
    if path is not None:
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise DatasetNotFoundError(
                f"data.train_path={str(path)!r} does not exist; {HOW_TO_GET}"
            )
        missing = [name for name in needed if not (folder / name).exists()]
        if missing:
            raise DatasetNotFoundError(
                f"data.train_path={str(path)!r} lacks {', '.join(missing)}; {HOW_TO_GET}"
            )
        return folder
    for folder in (DEBIAN_DIR, torchvision_dir()):
        if all((folder / name).exists() for name in needed):
            return folder
    raise DatasetNotFoundError(f"Fashion-MNIST not found in {DEBIAN_DIR} or {torchvision_dir()}; "
                               f"{HOW_TO_GET}")


def _read_split(folder: Path, split: str) -> ImageSplit:
    images_file, labels_file = FILES[split]
    images = read_idx(folder / images_file, IMAGE_MAGIC)
    labels = read_idx(folder / labels_file, LABEL_MAGIC)
    if len(images) != len(labels):
        raise DataFormatError(f"{folder}: {len(images)} {split} images but {len(labels)} labels")
    if len(labels) and labels.max() >= len(CLASS_NAMES):
        raise DataFormatError(f"{folder / labels_file}: label {labels.max()} is outside 0..9")
    return ImageSplit(torch.from_numpy(images.copy()).unsqueeze(1),
                      torch.from_numpy(labels.astype(np.int64)))


@DATASETS.register("fashion_mnist")
def load_fashion_mnist(train_path: str | None = None, **_: object) -> ImageDataset:
    """Fashion-MNIST: 60,000 + 10,000 grey 28x28 images of 10 clothing classes."""
    folder = find_fashion_mnist(train_path)
    train, test = _read_split(folder, "train"), _read_split(folder, "test")
    # 47 MB in memory: the statistics of every image, not of a sample.
    mean, std = channel_stats(train, max_images=len(train))
    return ImageDataset(train, test, CLASS_NAMES, mean, std)


def obtain_fashion_mnist() -> Path:
    """Finds Fashion-MNIST or fetches it: Debian's package as root, else torchvision's download.

    Raises:
        DatasetNotFoundError: Neither way worked; the message says what to do by hand.
    """
    try:
        return find_fashion_mnist(None)
    except DatasetNotFoundError:
        pass
    if os.geteuid() == 0 and shutil.which("apt-get"):
        for cmd in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "dataset-fashion-mnist"]):
            if subprocess.run(cmd, check=False).returncode != 0:
                break
        else:
            return find_fashion_mnist(None)
    try:
        from torchvision.datasets import FashionMNIST

        FashionMNIST(str(data_home()), download=True)
        return find_fashion_mnist(None)
    except Exception as err:  # noqa: BLE001 - any download failure ends in the same advice
        raise DatasetNotFoundError(
            f"could not obtain Fashion-MNIST (no Debian package, download failed: {err}); "
            f"{HOW_TO_GET}"
        ) from err
