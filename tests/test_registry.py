"""The registries, and the errors a user sees for unknown names and bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from fkt_plugin import METHODS
from fkt_plugin.args.evaluation import validate_eval_cfg
from fkt_plugin.args.run import validate_run_cfg
from fkt_plugin.data import load_dataset
from fkt_plugin.errors import ConfigError, DatasetNotFoundError, UnknownNameError
from fkt_plugin.evaluation.protocol_registry import PROTOCOLS
from fkt_plugin.loggers import LOGGERS
from fkt_plugin.optimizers import OPTIMIZERS, SCHEDULERS
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


def test_an_optimiser_registered_once_is_accepted_and_built(make_cfg) -> None:
    @OPTIMIZERS.register("nesterov_sgd")
    def nesterov(params, lr: float, weight_decay: float, **kwargs) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=0.9,
                               nesterov=True)

    try:
        cfg = make_cfg("supervised", "optimizer.name=nesterov_sgd", "scheduler.name=none",
                       "~optimizer.kwargs.momentum")
        optimizer = METHODS["supervised"](cfg).configure_optimizers()
        assert isinstance(optimizer, torch.optim.SGD)
        assert optimizer.param_groups[0]["nesterov"] is True
    finally:
        del OPTIMIZERS["nesterov_sgd"]
    with pytest.raises(ConfigError, match="optimizer.name='nesterov_sgd' is unknown; use one of "
                                          "sgd, lars, adam, adamw"):
        make_cfg("supervised", "optimizer.name=nesterov_sgd")


@pytest.mark.parametrize(("registry", "key", "value"), [
    (SCHEDULERS, "scheduler.name", "step"), (LOGGERS, "logger", "mlflow")])
def test_unknown_schedulers_and_loggers_list_the_registered_ones(
        make_cfg, registry: Registry, key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"{key}='{value}' is unknown; use one of "
                                          f"{', '.join(registry)}"):
        make_cfg("supervised", f"{key}={value}")


def test_evaluation_protocols_come_from_one_registry() -> None:
    assert list(PROTOCOLS) == ["linear", "mlp", "knn", "finetune"]
    assert [p.name for p in PROTOCOLS.values() if not p.frozen] == ["finetune"]
    with pytest.raises(ConfigError, match="must be a non-empty list of linear, mlp, knn, "
                                          "finetune"):
        validate_eval_cfg(OmegaConf.create({"run_dir": "r", "protocols": ["svm"]}))
