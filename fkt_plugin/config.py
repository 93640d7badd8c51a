"""Run configuration: every default in one place, and validation at the edge.

A run's cfg follows solo-learn's recipe schema (``method``, ``backbone``, ``method_kwargs``,
``data``, ``optimizer``, ``scheduler``, ``checkpoint``, ``auto_resume``, ``augmentations``,
``max_epochs``, ...). :func:`validate_run_cfg` fills what a recipe leaves out from
:data:`RUN_DEFAULTS`, checks values, and lets the chosen method fill its own ``method_kwargs``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the key and the fix."""


RUN_DEFAULTS: dict[str, Any] = {
    "name": None,
    "seed": 5,
    "backbone": {"name": "small_cnn", "kwargs": {}},
    "method_kwargs": {},
    "data": {
        "dataset": "fashion_mnist",
        "train_path": None,
        "val_path": None,
        "label_fraction": 1.0,
        "val_fraction": 0.1,
        "split_seed": 0,
        "num_workers": 0,
    },
    "optimizer": {
        "name": "sgd",
        "batch_size": 256,
        "lr": 0.06,
        "classifier_lr": 0.1,
        "weight_decay": 5e-4,
        "kwargs": {},
    },
    "scheduler": {
        "name": "warmup_cosine",
        "warmup_epochs": 0.0,
        "warmup_start_lr": 0.0,
        "min_lr": 0.0,
    },
    "performance": {"disable_channel_last": False},
    "knn_eval": {"enabled": True, "k": 20, "temperature": 0.07},
    "checkpoint": {"enabled": True, "dir": "trained_models", "frequency": 1},
    "auto_resume": {"enabled": True},
    "max_epochs": 100,
    "accelerator": "auto",
    "devices": 1,
    "precision": "32-true",
    "log_every_n_steps": 20,
}

OPTIMIZERS = ("sgd", "lars", "adam", "adamw")
SCHEDULERS = ("warmup_cosine", "cosine", "none")

# Keys of solo-learn's recipes that this runner reads elsewhere or deliberately ignores.
_HYDRA_KEYS = {"hydra", "defaults", "wandb"}


def fill_defaults(cfg: DictConfig, defaults: Mapping[str, Any], prefix: str = "") -> None:
    """Adds every key of ``defaults`` that ``cfg`` lacks, recursing into nested mappings."""
    with open_dict(cfg):
        for key, value in defaults.items():
            if key not in cfg or cfg[key] is None and isinstance(value, Mapping):
                cfg[key] = OmegaConf.create(dict(value)) if isinstance(value, Mapping) else value
            elif isinstance(value, Mapping):
                if not isinstance(cfg[key], DictConfig):
                    raise ConfigError(f"{prefix}{key} must be a mapping, got {cfg[key]!r}")
                fill_defaults(cfg[key], value, prefix=f"{prefix}{key}.")


def unknown_keys(cfg: DictConfig, defaults: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys of ``cfg`` that ``defaults`` does not define (free-form ``kwargs`` excepted)."""
    found = []
    for key in cfg:
        if key not in defaults:
            found.append(f"{prefix}{key}")
        elif isinstance(defaults[key], Mapping) and defaults[key] and key != "kwargs":
            found += unknown_keys(cfg[key], defaults[key], prefix=f"{prefix}{key}.")
    return found


def require_in_range(
    value: float, name: str, low: float, high: float, *, low_open: bool = False
) -> None:
    """Raises :class:`ConfigError` unless ``value`` lies in [low, high] (or (low, high])."""
    ok = (low < value if low_open else low <= value) and value <= high
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}]"
        raise ConfigError(f"{name}={value!r} is outside {interval}")


def validate_run_cfg(cfg: DictConfig) -> DictConfig:
    """Fills defaults into a run cfg and validates it, including the method's own kwargs.

    Args:
        cfg: A recipe as loaded by hydra (solo-learn schema).

    Returns:
        The same cfg, completed.

    Raises:
        ConfigError: A value is missing or out of range; the message says which and how to fix it.
        UnknownNameError: The method, backbone or dataset name is not registered.
    """
    from fkt_plugin.augmentation import parse_pipelines
    from fkt_plugin.backbones import BACKBONES
    from fkt_plugin.data import DATASETS
    from fkt_plugin.methods import METHODS

    if cfg.get("method") is None:
        raise ConfigError(
            "no method given: pass a recipe (e.g. --config-path recipes/pretrain/fashion_mnist "
            "--config-name fkt_joint) or +method=<name>; known methods: "
            f"{', '.join(sorted(METHODS))}"
        )
    method_cls = METHODS[cfg.method]
    extra = [k for k in unknown_keys(cfg, RUN_DEFAULTS) if k.split(".")[0] not in _HYDRA_KEYS]
    extra = [k for k in extra if k not in {"method", "augmentations"}]
    if extra:
        warnings.warn(f"config keys not used by fkt-train: {', '.join(extra)}", stacklevel=2)
    fill_defaults(cfg, RUN_DEFAULTS)
    BACKBONES[cfg.backbone.name]
    DATASETS[cfg.data.dataset]

    require_in_range(cfg.data.label_fraction, "data.label_fraction", 0.0, 1.0, low_open=True)
    require_in_range(cfg.data.val_fraction, "data.val_fraction", 0.0, 0.5)
    if cfg.optimizer.name not in OPTIMIZERS:
        raise ConfigError(
            f"optimizer.name={cfg.optimizer.name!r} is unknown; use one of {', '.join(OPTIMIZERS)}"
        )
    if cfg.scheduler.name not in SCHEDULERS:
        raise ConfigError(
            f"scheduler.name={cfg.scheduler.name!r} is unknown; use one of {', '.join(SCHEDULERS)}"
        )
    for key in ("lr", "classifier_lr"):
        if not cfg.optimizer[key] > 0:
            raise ConfigError(f"optimizer.{key}={cfg.optimizer[key]!r} must be > 0")
    if not (isinstance(cfg.optimizer.batch_size, int) and cfg.optimizer.batch_size > 0):
        raise ConfigError(f"optimizer.batch_size={cfg.optimizer.batch_size!r} must be an int > 0")
    if not (isinstance(cfg.max_epochs, int) and cfg.max_epochs > 0):
        raise ConfigError(f"max_epochs={cfg.max_epochs!r} must be an int > 0")
    if cfg.get("augmentations") is None:
        raise ConfigError(
            "augmentations is missing: add a list of pipelines (solo-learn's schema), e.g. "
            "defaults: [_self_, {augmentations: symmetric.yaml}]"
        )
    if not isinstance(cfg.augmentations, ListConfig):
        raise ConfigError("augmentations must be a list of pipelines (solo-learn's schema)")
    parse_pipelines(cfg.augmentations)
    if cfg.name is None:
        with open_dict(cfg):
            cfg.name = (f"{cfg.method}-{cfg.data.dataset}-labels{cfg.data.label_fraction:g}"
                        f"-seed{cfg.seed}")
    return method_cls.add_and_assert_specific_cfg(cfg)
