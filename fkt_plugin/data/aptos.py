"""APTOS 2019 Blindness Detection (Kaggle ``aptos2019-blindness-detection``).

``train.csv`` (``id_code,diagnosis``) and ``train_images/<id_code>.png``: colour fundus photos of
many sizes, graded 0-4 (No DR, Mild, Moderate, Severe, Proliferative DR) and strongly imbalanced.
Each photo's dark border is cropped away (the bounding box of the fundus circle) before resizing.
The competition's ``test.csv`` has no labels, so a seeded stratified ``data.holdout_fraction`` of
``train.csv`` is the test split; ``test_images/``, when present, joins the self-supervised pool as
unlabelled images. The grades are ordinal: quadratic weighted kappa is reported beside accuracy.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fkt_plugin.data.dataset import ImageDataset, channel_stats
from fkt_plugin.data.files import image_files, require_dir
from fkt_plugin.data.image_cache import Preprocess, decode_files
from fkt_plugin.data.registry import DATASETS
from fkt_plugin.data.splits import holdout, join
from fkt_plugin.errors import DataFormatError, DatasetNotFoundError

CLASS_NAMES = ("No DR", "Mild", "Moderate", "Severe", "Proliferative DR")
DEFAULT_SIZE = 256
# Border pixels of fundus photos are near-black but JPEG/PNG noise lifts a few above zero.
DARK_THRESHOLD = 10


def crop_dark_border(image: Image.Image, threshold: int = DARK_THRESHOLD) -> Image.Image:
    """Crops to the bounding box of the pixels brighter than ``threshold`` (the fundus)."""
    grey = np.asarray(image.convert("L"))
    rows = np.flatnonzero((grey > threshold).any(1))
    cols = np.flatnonzero((grey > threshold).any(0))
    if len(rows) == 0 or len(cols) == 0:
        return image  # an all-dark photo: nothing to crop to
    return image.crop((int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1))


def circle_crop_then_resize(size: int) -> Preprocess:
    """The fundus's bounding box, then ``size`` x ``size``."""
    def apply(image: Image.Image) -> Image.Image:
        return crop_dark_border(image).resize((size, size), Image.Resampling.BILINEAR)
    return apply


def read_labels(csv_path: Path) -> list[tuple[str, int]]:
    """``(id_code, diagnosis)`` rows of ``train.csv``.

    Raises:
        DataFormatError: Columns missing, or a diagnosis that is not an integer grade 0-4.
    """
    with open(csv_path, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        missing = [c for c in ("id_code", "diagnosis") if c not in columns]
        if missing:
            raise DataFormatError(f"{csv_path} lacks the column(s) {', '.join(missing)} (has "
                                  f"{', '.join(columns) or 'none'}); APTOS's train.csv has "
                                  "id_code,diagnosis")
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                grade = int(row["diagnosis"])
            except (TypeError, ValueError):
                grade = -1
            if not 0 <= grade < len(CLASS_NAMES):
                raise DataFormatError(f"{csv_path} line {line}: diagnosis {row['diagnosis']!r} "
                                      f"is not a grade 0-{len(CLASS_NAMES) - 1}")
            rows.append((row["id_code"], grade))
    return rows


@DATASETS.register("aptos")
def load_aptos(train_path: str | None = None, image_size: int | None = None,
               cache_dir: str | None = None, on_bad_image: str = "skip",
               holdout_fraction: float = 0.2, split_seed: int = 0,
               **_: object) -> ImageDataset:
    """APTOS 2019: 3,662 graded fundus photos; test = a stratified held-out share."""
    root = require_dir(train_path, "data.train_path",
                       "the APTOS 2019 folder (holding train.csv and train_images/)")
    csv_path, images_dir = root / "train.csv", root / "train_images"
    if not csv_path.is_file() or not images_dir.is_dir():
        raise DatasetNotFoundError(f"data.train_path={train_path!r} is not the APTOS folder: "
                                   "expected train.csv and train_images/ in it")
    rows = read_labels(csv_path)
    by_id = {p.stem: p for p in image_files(images_dir)}
    absent = [code for code, _ in rows if code not in by_id]
    if absent:
        message = (f"{len(absent)} id_code(s) of {csv_path} have no image in {images_dir}: "
                   f"{', '.join(absent[:5])}{' ...' if len(absent) > 5 else ''}")
        if on_bad_image == "error":
            raise DataFormatError(message + "; set data.on_bad_image=skip to train without them")
        warnings.warn(message + " (skipped)", stacklevel=2)
    listed = {code for code, _ in rows}
    orphans = sorted(set(by_id) - listed)
    if orphans:
        warnings.warn(f"{len(orphans)} image(s) in {images_dir} have no row in {csv_path} and "
                      f"are not used: {', '.join(orphans[:5])}{' ...' if len(orphans) > 5 else ''}",
                      stacklevel=2)
    present = [(code, grade) for code, grade in rows if code in by_id]
    size = image_size or DEFAULT_SIZE
    common: dict[str, Any] = {"size": size, "preprocess": circle_crop_then_resize(size),
              "preprocess_name": f"circle-crop-{DARK_THRESHOLD}", "cache_dir": cache_dir,
              "on_bad_image": on_bad_image}
    labelled = decode_files([by_id[c] for c, _ in present], [g for _, g in present],
                            name="aptos train", **common).split
    train, test = holdout(labelled, holdout_fraction, split_seed)
    extra_dir = root / "test_images"
    if extra_dir.is_dir() and image_files(extra_dir):
        extra = image_files(extra_dir)
        train = join(train, decode_files(extra, [-1] * len(extra),
                                         name="aptos test_images (unlabelled)", **common).split)
    mean, std = channel_stats(train)
    return ImageDataset(train, test, CLASS_NAMES, mean, std, ordinal=True)
