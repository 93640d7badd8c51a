"""The schema of an evaluation of a finished run (``fkt-eval``; also the ``eval`` block of a
comparison sweep): its protocols and their settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from fkt_plugin.config import (
    epochs_for,
    fill_defaults,
    require_in_range,
    require_positive,
    require_positive_int,
    unknown_settings,
)
from fkt_plugin.errors import ConfigError

PROTOCOLS = ("linear", "mlp", "knn", "finetune")

# Evaluation protocols of a finished run (fkt-eval; also the compare sweep's `eval` block).
EVAL_DEFAULTS: dict[str, Any] = {
    "run_dir": None,
    # A training recipe describing backbone and data, for a checkpoint that was not trained by
    # fkt-train (then checkpoint is a file path and run_dir is where results go).
    "recipe": None,
    "recipe_overrides": [],
    # The end of pre-training: self-supervised training selects no epoch with labels.
    "checkpoint": "last.ckpt",
    "protocols": ["linear", "knn"],
    # null: the run's own label fraction and split seed.
    "label_fraction": None,
    "linear": {"weight_decays": [0.0, 1e-4, 1e-3, 1e-2], "max_iter": 200},
    "mlp": {"hidden_dim": 512, "epochs": 100, "batch_size": 256, "lr": 1e-3,
            "weight_decay": 1e-4},
    "knn": {"k": 20, "temperature": 0.07},
    # Fine-tuning is a supervised run initialised from the checkpoint: a lower learning rate
    # than training from scratch, a short schedule, weak augmentation (null: random resized
    # crops of scale 0.5-1 and flips at the run's crop size).
    # val_every_n_steps: null validates every epoch; an int, every that many steps (runs whose
    # labelled-only epochs are a step or two).
    "finetune": {"max_epochs": 20, "lr": 0.03, "weight_decay": 5e-4, "warmup_epochs": 1,
                 "augmentations": None, "val_every_n_steps": None},
    "plots": {"confusion_matrix": True, "embedding": True, "embedding_samples": 2000},
}


def validate_eval_cfg(cfg: DictConfig) -> DictConfig:
    """Fills :data:`EVAL_DEFAULTS` into an evaluation cfg and validates it.

    Raises:
        ConfigError: An unknown key or protocol, or a value out of range.
    """
    extra = unknown_settings(cfg, EVAL_DEFAULTS)
    if extra:
        raise ConfigError(f"unknown evaluation keys: {', '.join(extra)}; known: "
                          f"{', '.join(EVAL_DEFAULTS)}")
    fill_defaults(cfg, EVAL_DEFAULTS)
    if isinstance(cfg.protocols, str):
        with open_dict(cfg):
            cfg.protocols = [cfg.protocols]
    unknown = [p for p in cfg.protocols if p not in PROTOCOLS]
    if unknown or not cfg.protocols:
        raise ConfigError(f"protocols={list(cfg.protocols)} must be a non-empty list of "
                          f"{', '.join(PROTOCOLS)}")
    if cfg.label_fraction is not None:
        require_in_range(cfg.label_fraction, "label_fraction", 0.0, 1.0, low_open=True)
    if isinstance(cfg.finetune.max_epochs, Mapping):
        for fraction in cfg.finetune.max_epochs:
            epochs_for(cfg.finetune.max_epochs, float(fraction), "finetune.max_epochs")
    else:
        epochs_for(cfg.finetune.max_epochs, 1.0, "finetune.max_epochs")
    for key in ("mlp.epochs", "mlp.hidden_dim", "mlp.batch_size", "knn.k", "linear.max_iter"):
        require_positive_int(OmegaConf.select(cfg, key), key)
    for key in ("mlp.lr", "finetune.lr", "knn.temperature"):
        require_positive(OmegaConf.select(cfg, key), key)
    return cfg
