"""The schema of ``fkt-cluster``: a teacher's features of a dataset → k-means → pseudo-labels."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from fkt_plugin.config import (
    fill_defaults,
    require_positive_int,
    unknown_settings,
)
from fkt_plugin.errors import ConfigError

CLUSTER_DEFAULTS: dict[str, Any] = {
    # The teacher: a run directory of fkt-train (its config.yaml names backbone and data) ...
    "run_dir": None,
    "checkpoint": "last.ckpt",
    # ... or, for a checkpoint trained elsewhere (solo-learn, torchvision), a training recipe
    # describing its backbone and data, with checkpoint=<file>.
    "recipe": None,
    "recipe_overrides": [],
    # Overrides of the teacher's data keys (data.dataset, data.train_path, ...): cluster another
    # dataset than the teacher was trained on.
    "data": {},
    "k": None,
    "out": None,
    # PCA to pca_dim dimensions first (null: none), whitened or not; then L2 normalisation
    # (spherical k-means, the paper's choice).
    "pca_dim": None,
    "whiten": False,
    "l2_normalize": True,
    "restarts": 3,
    "iterations": 20,
    "seed": 0,
    # faiss on every GPU it sees (needs faiss-gpu instead of faiss-cpu).
    "use_gpu": False,
    "batch_size": 512,
    # A second dataset labelled with the fitted centroids: {dataset, train_path, ..., out}
    # (empty: none).
    "assign_to": {},
    # The picture: the largest clusters, a few images each.
    "picture": {"clusters": 10, "images_per_cluster": 8},
}


def validate_cluster_cfg(cfg: DictConfig) -> DictConfig:
    """Fills :data:`CLUSTER_DEFAULTS` and validates.

    Raises:
        ConfigError: Unknown keys, no teacher, k or out missing, or values out of range.
    """
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
