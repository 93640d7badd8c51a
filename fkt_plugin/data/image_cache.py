"""Image files decoded once into a uint8 cache at the training resolution.

Decoding thousands of JPEG/PNG files every epoch is slow, so an adapter that reads image files
hands this module its list of files, labels and a per-image preprocessing step; the images are
decoded once into a memory-mapped ``(N, C, H, W)`` uint8 array under a cache directory, keyed by
the files (path, size, modification time), the resolution and the preprocessing. Later runs
open the array at once; a change to any file rebuilds it.

A file that cannot be decoded is skipped with a warning naming it (or, with
``on_bad_image="error"``, stops the build with its name and position), and the skipped files
are remembered with the cache, so that ``fkt-data inspect`` can list them.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from fkt_plugin.config import require_choice
from fkt_plugin.data.dataset import ImageSplit
from fkt_plugin.data.files import BAD_IMAGE_POLICIES, data_home
from fkt_plugin.errors import DataFormatError

Preprocess = Callable[[Image.Image], Image.Image]


def default_cache_dir() -> Path:
    """``$FKT_DATA_HOME/image_cache``, else ``~/.cache/fkt_plugin/image_cache``."""
    return data_home() / "image_cache"


@dataclass
class DecodedFiles:
    """The result of decoding a list of files: the images that decoded and those skipped."""

    split: ImageSplit
    files: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    from_cache: bool = False


def resize_square(size: int) -> Preprocess:
    """Resizes to ``size`` x ``size`` (bilinear, antialiased): for near-square datasets."""
    def apply(image: Image.Image) -> Image.Image:
        if image.size == (size, size):
            return image
        return image.resize((size, size), Image.Resampling.BILINEAR)
    return apply


def resize_center_crop(size: int) -> Preprocess:
    """Resizes the shorter side to ``size``, then crops the centre square: for any aspect."""
    def apply(image: Image.Image) -> Image.Image:
        w, h = image.size
        scale = size / min(w, h)
        image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))),
                             Image.Resampling.BILINEAR)
        w, h = image.size
        left, top = (w - size) // 2, (h - size) // 2
        return image.crop((left, top, left + size, top + size))
    return apply


def _decode(path: Path, mode: str, preprocess: Preprocess) -> np.ndarray:
    with Image.open(path) as source:
        source.load()
        image = preprocess(source.convert(mode))
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _cache_key(files: Sequence[Path], targets: Sequence[int], size: int, mode: str,
               preprocess_name: str) -> str:
    digest = hashlib.sha1(f"{size}|{mode}|{preprocess_name}".encode())
    for path, target in zip(files, targets, strict=True):
        stat = path.stat()
        digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{target}\n".encode())
    return digest.hexdigest()[:16]


def decode_files(files: Sequence[Path], targets: Sequence[int], size: int, *, mode: str = "RGB",
                 preprocess: Preprocess, preprocess_name: str, cache_dir: str | Path | None,
                 name: str, on_bad_image: str = "skip") -> DecodedFiles:
    """Decodes image files to a uint8 split, through the cache.

    Args:
        files: Image paths, in order.
        targets: One class index (or -1 for unlabelled) per file.
        size: Side of the square images the preprocessing produces.
        mode: PIL mode, ``"RGB"`` or ``"L"``.
        preprocess: PIL image → PIL image of ``size`` x ``size``.
        preprocess_name: Names the preprocessing in the cache key (change it, rebuild).
        cache_dir: Cache folder (None: :func:`default_cache_dir`).
        name: Human name of what is decoded (``"intel train"``), for messages and file names.
        on_bad_image: ``"skip"`` (warn, count, go on) or ``"error"`` (stop, naming the file).

    Raises:
        DataFormatError: ``on_bad_image="error"`` and a file failed to decode, or every file
            failed.
    """
    require_choice(on_bad_image, "data.on_bad_image", BAD_IMAGE_POLICIES)
    files = [Path(f) for f in files]
    channels = 1 if mode == "L" else 3
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = _cache_key(files, targets, size, mode, preprocess_name)
    stem = folder / f"{name.replace(' ', '_')}-{size}px-{key}"
    meta_path, array_path = stem.with_suffix(".json"), stem.with_suffix(".u8")
    if meta_path.is_file() and array_path.is_file():
        meta = json.loads(meta_path.read_text())
        # Copy-on-write: torch gets a writable array without the file ever being written.
        images = np.memmap(array_path, dtype=np.uint8, mode="c",
                           shape=(len(meta["targets"]), channels, size, size))
        split = ImageSplit(torch.from_numpy(images), torch.tensor(meta["targets"],
                                                                   dtype=torch.int64))
        remembered = [(str(s[0]), str(s[1])) for s in meta["skipped"]]
        _warn_skipped(name, remembered, len(remembered) + len(meta["files"]))
        return DecodedFiles(split, meta["files"], remembered, from_cache=True)
    folder.mkdir(parents=True, exist_ok=True)
    partial = array_path.with_suffix(".u8.partial")
    buffer = np.memmap(partial, dtype=np.uint8, mode="w+",
                       shape=(max(1, len(files)), channels, size, size))
    kept: list[int] = []
    skipped: list[tuple[str, str]] = []
    for i, path in enumerate(tqdm(files, desc=f"decoding {name} to {size}px (once)",
                                  unit="img")):
        try:
            array = _decode(path, mode, preprocess)
            if array.shape != (channels, size, size):
                raise ValueError(f"preprocessing gave shape {array.shape}")
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError,
                Image.DecompressionBombError) as err:
            if on_bad_image == "error":
                del buffer
                partial.unlink(missing_ok=True)
                raise DataFormatError(
                    f"{path} (file {i + 1:,} of {len(files):,} of {name}) cannot be decoded: "
                    f"{err}; remove or replace it, or set data.on_bad_image=skip"
                ) from None
            skipped.append((str(path), f"{type(err).__name__}: {err}"))
            continue
        buffer[len(kept)] = array
        kept.append(i)
    if not kept:
        del buffer
        partial.unlink(missing_ok=True)
        raise DataFormatError(f"none of the {len(files)} files of {name} could be decoded "
                              f"(first: {skipped[0][0]}: {skipped[0][1]})" if skipped else
                              f"{name} has no image files")
    buffer.flush()
    del buffer
    # Decoded images fill the first rows; cut off the rows of skipped files. The cache appears
    # under its final name only when complete, so an interrupted build is never read back.
    os.truncate(partial, len(kept) * channels * size * size)
    partial.replace(array_path)
    kept_targets = [int(targets[i]) for i in kept]
    kept_files = [str(files[i]) for i in kept]
    meta_path.write_text(json.dumps({"files": kept_files, "targets": kept_targets,
                                     "skipped": skipped}))
    _warn_skipped(name, skipped, len(files))
    images = np.memmap(array_path, dtype=np.uint8, mode="c",
                       shape=(len(kept), channels, size, size))
    return DecodedFiles(ImageSplit(torch.from_numpy(images),
                                   torch.tensor(kept_targets, dtype=torch.int64)),
                        kept_files, skipped)


def _warn_skipped(name: str, skipped: Sequence[tuple[str, str]], total: int) -> None:
    if skipped:
        listed = "; ".join(f"{p} ({why})" for p, why in skipped[:5])
        warnings.warn(f"{name}: skipped {len(skipped)} of {total} images that could not be "
                      f"decoded: {listed}{' ...' if len(skipped) > 5 else ''}", stacklevel=3)

