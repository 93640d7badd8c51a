"""Any ``<root>/<class>/<image>`` tree (torchvision's ImageFolder layout), plus an optional
folder of unlabelled images for the self-supervised pool.

Images are decoded once at ``data.image_size`` (shorter side resized, centre square cropped)
into the uint8 cache of :mod:`fkt_plugin.data.image_cache`. Without ``data.val_path`` (a second
tree with the same class folders), a seeded stratified ``data.holdout_fraction`` of the tree is
held out as the test split.
"""

from __future__ import annotations

from typing import Any

from fkt_plugin.data.dataset import ImageDataset, channel_stats
from fkt_plugin.data.files import class_tree, image_files, require_dir
from fkt_plugin.data.image_cache import decode_files, resize_center_crop
from fkt_plugin.data.registry import DATASETS
from fkt_plugin.data.splits import holdout, join
from fkt_plugin.errors import ConfigError


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
    common: dict[str, Any] = {"size": image_size, "preprocess": preprocess, "preprocess_name": tag,
              "cache_dir": cache_dir, "on_bad_image": on_bad_image}
    train = decode_files(files, targets, name=f"folder {root.name} train", **common).split
    if val_path is not None:
        val_root = require_dir(val_path, "data.val_path", "a folder of <class>/<image> folders")
        _names, val_files, val_targets = class_tree(val_root, names)
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
    mean, std = channel_stats(train)
    return ImageDataset(train, test, names, mean, std)
