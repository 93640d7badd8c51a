"""Shared fixtures: Fashion-MNIST-format files written at test time from real pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import DictConfig, open_dict

from fkt_plugin.args.run import validate_run_cfg
from tests.helpers import IDX_NAMES, digits_as_28px, load_recipe, tiny_overrides, write_idx


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


@pytest.fixture
def make_cfg(fmnist_dir: Path, tmp_path: Path):
    """``make_cfg(recipe, *overrides)``: a validated tiny cfg with the data fields filled."""
    def make(recipe: str, *overrides: str) -> DictConfig:
        cfg = validate_run_cfg(load_recipe(recipe, [*tiny_overrides(fmnist_dir, tmp_path),
                                                    *overrides]))
        with open_dict(cfg):
            cfg.data.num_classes = 10
            cfg.data.num_channels = 1
        return cfg

    return make
