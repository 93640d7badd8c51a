"""Shared fixtures: Fashion-MNIST-format files written at test time from real pixels."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict
from sklearn.datasets import load_digits

RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "pretrain" / "fashion_mnist"
IDX_NAMES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
             "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def write_idx(path: Path, array: np.ndarray) -> None:
    """Writes a gzip'd IDX file: magic 2051 (images) or 2049 (labels), big-endian sizes, bytes."""
    magic = 2051 if array.ndim == 3 else 2049
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", n) for n in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def digits_as_28px() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 real 8x8 digit scans (0-16), upscaled to 28x28 uint8 (0-255)."""
    digits = load_digits()
    images = np.kron(digits.images, np.ones((3, 3)))  # 24x24, each pixel a 3x3 block
    images = np.pad(images, ((0, 0), (2, 2), (2, 2)))
    return (images * 255 / 16).round().astype(np.uint8), digits.target.astype(np.uint8)


@pytest.fixture(scope="session")
def digits28() -> tuple[np.ndarray, np.ndarray]:
    return digits_as_28px()


@pytest.fixture(scope="session")
def fmnist_dir(tmp_path_factory: pytest.TempPathFactory,
               digits28: tuple[np.ndarray, np.ndarray]) -> Path:
    """A folder with the four Fashion-MNIST files: 1,400 training and 397 test images."""
    images, labels = digits28
    folder = tmp_path_factory.mktemp("fashion-mnist")
    for split, part in (("train", slice(0, 1400)), ("test", slice(1400, None))):
        write_idx(folder / IDX_NAMES[split][0], images[part])
        write_idx(folder / IDX_NAMES[split][1], labels[part])
    return folder


def tiny_overrides(data_dir: Path, out_dir: Path) -> list[str]:
    """Overrides that shrink a recipe to seconds on a CPU."""
    return [f"data.train_path={data_dir}", f"checkpoint.dir={out_dir}", "max_epochs=1",
            "optimizer.batch_size=64", "backbone.kwargs.width=4", "++log_every_n_steps=1",
            "scheduler.warmup_epochs=0", "accelerator=cpu"]


def load_recipe(name: str, overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(RECIPES), version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


@pytest.fixture
def make_cfg(fmnist_dir: Path, tmp_path: Path):
    """``make_cfg(recipe, *overrides)``: a validated tiny cfg with the data fields filled."""
    from fkt_plugin.config import validate_run_cfg

    def make(recipe: str, *overrides: str) -> DictConfig:
        cfg = validate_run_cfg(load_recipe(recipe, [*tiny_overrides(fmnist_dir, tmp_path),
                                                    *overrides]))
        with open_dict(cfg):
            cfg.data.num_classes = 10
            cfg.data.num_channels = 1
        return cfg

    return make
