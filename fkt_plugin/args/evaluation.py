"""The schema of an evaluation of a finished run (``fkt-eval``; also the ``eval`` block of a
comparison sweep): its protocols and their settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from fkt_plugin.args.schemas import EvalSchema, defaults_of
from fkt_plugin.config import (
    fill_defaults,
    mapping_copy,
    require_in_range,
    require_positive,
    require_positive_int,
    resolve_per_fraction,
    unknown_settings,
)
from fkt_plugin.errors import ConfigError
from fkt_plugin.evaluation.protocol_registry import PROTOCOLS

EVAL_DEFAULTS: dict[str, Any] = defaults_of(EvalSchema)
"""Evaluation protocols of a finished run (:class:`fkt_plugin.args.schemas.EvalSchema`)."""


def validate_eval_cfg(cfg: DictConfig) -> DictConfig:
    """Fills :data:`EVAL_DEFAULTS` into an evaluation cfg and validates it.

    Raises:
        ConfigError: An unknown key or protocol, or a value out of range.
    """
    cfg = mapping_copy(cfg)  # untyped: the checks below complete it
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
            resolve_per_fraction(cfg.finetune.max_epochs, float(fraction), "finetune.max_epochs")
    else:
        resolve_per_fraction(cfg.finetune.max_epochs, 1.0, "finetune.max_epochs")
    for key in ("mlp.epochs", "mlp.hidden_dim", "mlp.batch_size", "knn.k", "linear.max_iter"):
        require_positive_int(OmegaConf.select(cfg, key), key)
    for key in ("mlp.lr", "finetune.lr", "knn.temperature"):
        require_positive(OmegaConf.select(cfg, key), key)
    return cfg
