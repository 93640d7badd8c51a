"""The registries, and the errors a user sees for unknown names and bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from fkt_plugin import METHODS
from fkt_plugin.args.run import validate_run_cfg
from fkt_plugin.data import load_dataset
from fkt_plugin.errors import ConfigError, DatasetNotFoundError, UnknownNameError
from fkt_plugin.registry import Registry
from tests.helpers import load_recipe, tiny_overrides


def test_methods_are_registered_with_solo_names() -> None:
    assert {"fkt_joint", "simclr", "byol", "supervised"} <= set(METHODS)


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError) as err:
        METHODS["simclr_v3"]
    message = str(err.value)
    assert "simclr_v3" in message
    for name in ("byol", "fkt_joint", "simclr", "supervised"):
        assert name in message


def test_register_decorator_adds_and_refuses_duplicates() -> None:
    registry: Registry[object] = Registry("widget")

    @registry.register("a")
    class A:
        pass

    assert registry["a"] is A
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a")(A)


def test_unknown_method_in_cfg(fmnist_dir: Path, tmp_path: Path) -> None:
    cfg = load_recipe("simclr", [*tiny_overrides(fmnist_dir, tmp_path), "method=mocov9"])
    with pytest.raises(UnknownNameError, match="known methods: byol, dae, fkt_joint, mvmr, "
                                               "simclr, supervised"):
        validate_run_cfg(cfg)


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_label_fraction_outside_unit_interval(fmnist_dir: Path, tmp_path: Path,
                                              fraction: float) -> None:
    cfg = load_recipe("fkt_joint", [*tiny_overrides(fmnist_dir, tmp_path),
                                    f"data.label_fraction={fraction}"])
    with pytest.raises(ConfigError, match=r"data.label_fraction=.* is outside \(0.0, 1.0\]"):
        validate_run_cfg(cfg)


def test_missing_dataset_path_says_how_to_get_the_data(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("fashion_mnist", str(tmp_path / "nowhere"))
    assert "nowhere" in str(err.value) and "does not exist" in str(err.value)
    assert "apt-get install dataset-fashion-mnist" in str(err.value)


def test_folder_without_the_files_names_them(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="lacks train-images-idx3-ubyte.gz"):
        load_dataset("fashion_mnist", str(tmp_path))


def test_too_few_views_for_the_supervised_view(fmnist_dir: Path, tmp_path: Path) -> None:
    cfg = load_recipe("fkt_joint", [*tiny_overrides(fmnist_dir, tmp_path),
                                    "augmentations=symmetric.yaml"])
    with pytest.raises(ConfigError, match="needs 3 views .* augmentations make 2"):
        validate_run_cfg(cfg)


def test_swapping_the_method_fills_its_defaults_and_drops_foreign_kwargs(
        fmnist_dir: Path, tmp_path: Path) -> None:
    cfg = load_recipe("fkt_joint", [*tiny_overrides(fmnist_dir, tmp_path), "method=byol"])
    with pytest.warns(UserWarning, match="not used by byol: ssl_weight, sup_weight"):
        cfg = validate_run_cfg(cfg)
    assert cfg.method_kwargs.momentum_start == 0.99
    assert "ssl_weight" not in cfg.method_kwargs


def test_a_warmup_longer_than_the_run_is_named(fmnist_dir: Path, tmp_path: Path) -> None:
    cfg = load_recipe("simclr", [*tiny_overrides(fmnist_dir, tmp_path), "max_epochs=2",
                                 "scheduler.warmup_epochs=10"])
    with pytest.raises(ConfigError, match="scheduler.warmup_epochs=10 is longer than the run "
                                          r"\(max_epochs=2\): lower it, e.g. "
                                          "scheduler.warmup_epochs=0.2"):
        validate_run_cfg(cfg)
    cfg = load_recipe("simclr", [*tiny_overrides(fmnist_dir, tmp_path), "max_epochs=2",
                                 "scheduler.warmup_epochs=2"])
    assert validate_run_cfg(cfg).scheduler.warmup_epochs == 2
