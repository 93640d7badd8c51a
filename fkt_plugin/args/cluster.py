"""The schema of ``fkt-cluster``: a teacher's features of a dataset → k-means → pseudo-labels."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from fkt_plugin.args.schemas import ClusterSchema, defaults_of
from fkt_plugin.config import (
    fill_defaults,
    mapping_copy,
    require_positive_int,
    unknown_settings,
)
from fkt_plugin.errors import ConfigError

CLUSTER_DEFAULTS: dict[str, Any] = defaults_of(ClusterSchema)
"""fkt-cluster's settings (:class:`fkt_plugin.args.schemas.ClusterSchema`)."""


def validate_cluster_cfg(cfg: DictConfig) -> DictConfig:
    """Fills :data:`CLUSTER_DEFAULTS` and validates.

    Raises:
        ConfigError: Unknown keys, no teacher, k or out missing, or values out of range.
    """
    cfg = mapping_copy(cfg)  # untyped: the checks below complete it
    extra = unknown_settings(cfg, CLUSTER_DEFAULTS, free_form=("data", "assign_to"))
    if extra:
        raise ConfigError(f"unknown fkt-cluster keys: {', '.join(extra)}; known: "
                          f"{', '.join(CLUSTER_DEFAULTS)}")
    fill_defaults(cfg, CLUSTER_DEFAULTS)
    if cfg.run_dir is None and cfg.recipe is None:
        raise ConfigError("no teacher: give run_dir=<fkt-train run> (or recipe=<training recipe> "
                          "checkpoint=<file> for a checkpoint trained elsewhere)")
    if cfg.k is None or cfg.out is None:
        raise ConfigError("give k=<number of clusters> and out=<pseudo-labels.npz>")
    for key in ("k", "restarts", "iterations", "batch_size", "picture.clusters",
                "picture.images_per_cluster"):
        require_positive_int(OmegaConf.select(cfg, key), key)
    if cfg.k < 2:
        raise ConfigError(f"k={cfg.k} must be at least 2")
    if cfg.pca_dim is not None:
        require_positive_int(cfg.pca_dim, "pca_dim")
    if cfg.assign_to and cfg.assign_to.get("out") is None:
        raise ConfigError("assign_to needs out=<file.npz> (e.g. assign_to.out=other.npz) beside "
                          "its data keys")
    return cfg
