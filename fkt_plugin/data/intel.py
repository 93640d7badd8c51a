"""Intel Image Classification (Kaggle ``puneet6060/intel-image-classification``).

``seg_train/seg_train/<class>/*.jpg`` (14,034), ``seg_test/seg_test/<class>/*.jpg`` (3,000) and
the unlabelled ``seg_pred/seg_pred/*.jpg`` (7,301), which joins the training split with target -1
for the self-supervised pool. 150x150 colour JPEGs of 6 scenes; the few of another size are
resized. ``data.train_path`` may point at the dataset folder, at ``seg_train`` or at the inner
``seg_train/seg_train``; the single folder level (``seg_train/<class>``) is accepted too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fkt_plugin.data.dataset import ImageDataset, channel_stats
from fkt_plugin.data.files import class_tree, image_files, require_dir
from fkt_plugin.data.image_cache import decode_files, resize_square
from fkt_plugin.data.registry import DATASETS
from fkt_plugin.data.splits import join
from fkt_plugin.errors import DatasetNotFoundError

NATIVE_SIZE = 150
NUM_CLASSES = 6  # buildings, forest, glacier, mountain, sea, street


def _inner(folder: Path) -> Path:
    """``seg_x/seg_x`` when the doubled level exists, else ``seg_x``."""
    doubled = folder / folder.name
    return doubled if doubled.is_dir() else folder


def find_root(path: Path) -> Path:
    """The dataset folder (holding ``seg_train``), from any of the levels a user may give."""
    if path.name == "seg_train":  # seg_train/seg_train or seg_train: the root is above
        return path.parent.parent if path.parent.name == "seg_train" else path.parent
    if (path / "seg_train").is_dir():
        return path
    held = ", ".join(sorted(p.name for p in path.iterdir())[:8]) or "nothing"
    raise DatasetNotFoundError(
        f"data.train_path={str(path)!r} is not the Intel Image Classification folder: expected "
        f"the folder that holds seg_train/ (and seg_test/, seg_pred/), or seg_train/seg_train "
        f"itself; it holds {held}"
    )


@DATASETS.register("intel")
def load_intel(train_path: str | None = None, val_path: str | None = None,
               image_size: int | None = None, cache_dir: str | None = None,
               on_bad_image: str = "skip", **_: object) -> ImageDataset:
    """Intel scenes: 6 classes, labelled train + unlabelled ``seg_pred`` pool, ``seg_test``."""
    given = require_dir(train_path, "data.train_path",
                        "the Intel Image Classification folder (holding seg_train/)")
    root = find_root(given)
    size = image_size or NATIVE_SIZE
    common: dict[str, Any] = {"size": size, "preprocess": resize_square(size),
                              "preprocess_name": "square", "cache_dir": cache_dir,
                              "on_bad_image": on_bad_image}
    names, files, targets = class_tree(_inner(root / "seg_train"))
    train = decode_files(files, targets, name="intel seg_train", **common).split
    test_dir = (require_dir(val_path, "data.val_path", "the seg_test folder") if val_path
                else root / "seg_test")
    if not test_dir.is_dir():
        raise DatasetNotFoundError(f"{test_dir} does not exist: the Intel folder needs seg_test/ "
                                   "(or set data.val_path)")
    _names, test_files, test_targets = class_tree(_inner(test_dir), names)
    test = decode_files(test_files, test_targets, name="intel seg_test", **common).split
    pred_dir = root / "seg_pred"
    if pred_dir.is_dir():
        unlabelled = image_files(_inner(pred_dir))
        if unlabelled:
            train = join(train, decode_files(unlabelled, [-1] * len(unlabelled),
                                             name="intel seg_pred", **common).split)
    mean, std = channel_stats(train)
    return ImageDataset(train, test, names, mean, std)
