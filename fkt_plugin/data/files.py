"""File helpers the dataset adapters share: where data lives, folders a setting names, image
files and class trees. No adapter imports another; they all import this."""

from __future__ import annotations

import os
from pathlib import Path

from fkt_plugin.errors import DataFormatError, DatasetNotFoundError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# What an adapter does with a file that does not decode: warn and go on, or stop at it.
BAD_IMAGE_POLICIES = ("skip", "error")


def data_home() -> Path:
    """``$FKT_DATA_HOME``, else ``~/.cache/fkt_plugin``: downloads and decode caches go here."""
    return Path(os.environ.get("FKT_DATA_HOME", Path.home() / ".cache" / "fkt_plugin"))


def require_dir(path: str | os.PathLike[str] | None, key: str, what: str) -> Path:
    """The folder a setting names.

    Args:
        path: The setting's value.
        key: The setting's name, e.g. ``data.train_path``.
        what: What the folder should hold, for the message.

    Raises:
        DatasetNotFoundError: ``path`` is unset or not a folder.
    """
    if path is None:
        raise DatasetNotFoundError(f"set {key} to {what}")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DatasetNotFoundError(f"{key}={str(path)!r} does not exist (expected {what})")
    return folder


def image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (hidden files ignored)."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in IMAGE_SUFFIXES)


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
