"""The adapters as map-style datasets (lightly, solo-learn, plain PyTorch)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from lightly.data import LightlyDataset
from PIL import Image

from fkt_plugin.data import load_dataset
from fkt_plugin.data.torch_dataset import SplitDataset, torch_dataset
from fkt_plugin.errors import ConfigError
from tests.helpers import REPO, make_aptos, make_intel


def test_items_are_the_adapters_images_and_targets(tmp_path: Path) -> None:
    make_intel(tmp_path / "intel")
    cache = str(tmp_path / "cache")
    data = load_dataset("intel", str(tmp_path / "intel"), cache_dir=cache)
    pool = torch_dataset("intel", "train", train_path=str(tmp_path / "intel"), cache_dir=cache)
    assert len(pool) == len(data.train) and pool.targets == data.train.targets.tolist()
    assert -1 in pool.targets  # seg_pred, unlabelled
    for index in (0, len(pool) - 1, -1):
        image, target = pool[index]
        assert isinstance(image, Image.Image) and image.size == (150, 150)
        expected = data.train.read(index if index >= 0 else len(pool) + index)
        assert np.array_equal(np.asarray(image), expected.permute(1, 2, 0).numpy())
        assert target == pool.targets[index]
    labelled = torch_dataset("intel", "labelled", train_path=str(tmp_path / "intel"),
                             cache_dir=cache, image_kind="tensor",
                             transform=lambda x: x.float() / 255)
    assert min(labelled.targets) >= 0 and len(labelled) == len(pool) - 1
    image, _ = labelled[0]
    assert image.dtype == torch.float32 and image.shape == (3, 150, 150)
    test = torch_dataset("intel", "test", train_path=str(tmp_path / "intel"), cache_dir=cache)
    assert test.targets == data.test.targets.tolist()
    with pytest.raises(IndexError, match="index 8 is out of range for 8 images"):
        pool[8]


def test_bad_split_and_image_kind_are_named(tmp_path: Path) -> None:
    make_intel(tmp_path / "intel")
    with pytest.raises(ConfigError, match="split='val' is not one of train, labelled, "
                                          "unlabelled, test"):
        torch_dataset("intel", "val", train_path=str(tmp_path / "intel"),
                      cache_dir=str(tmp_path / "c"))
    data = load_dataset("intel", str(tmp_path / "intel"), cache_dir=str(tmp_path / "c"))
    with pytest.raises(ConfigError, match="image_kind='numpy' is not one of 'pil', 'tensor'"):
        SplitDataset(data.train, image_kind="numpy")  # type: ignore[arg-type]


def test_lightly_takes_it_and_the_aptos_example_trains(tmp_path: Path, monkeypatch,
                                                       capsys) -> None:
    make_aptos(tmp_path / "aptos", [0, 1, 2, 3, 4] * 2)
    monkeypatch.setenv("FKT_DATA_HOME", str(tmp_path / "home"))
    pool = torch_dataset("aptos", "train", train_path=str(tmp_path / "aptos"), image_size=64)
    wrapped = LightlyDataset.from_torch_dataset(pool)
    image, target, _ = wrapped[0]
    assert isinstance(image, Image.Image) and target == pool.targets[0]
    spec = importlib.util.spec_from_file_location("lightly_aptos",
                                                  REPO / "examples" / "lightly_aptos.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    torch.manual_seed(0)
    for method in ("simclr", "byol"):
        loss = example.main(["--data", str(tmp_path / "aptos"), "--method", method,
                             "--image-size", "32", "--batch-size", "4", "--max-steps", "2",
                             "--num-workers", "0"])
        assert np.isfinite(loss)
        assert f"epoch 0: {method} loss" in capsys.readouterr().out
