"""The schema of a training run (``fkt-train``, every arm of ``fkt-compare``): defaults and
validation at the edge, before anything is loaded or trained.

A run's cfg follows solo-learn's recipe schema (``method``, ``backbone``, ``method_kwargs``,
``data``, ``optimizer``, ``scheduler``, ``checkpoint``, ``auto_resume``, ``augmentations``,
``max_epochs``, ...). :func:`validate_run_cfg` fills what a recipe leaves out from
:data:`RUN_DEFAULTS`, checks values against the registries, and lets the chosen method fill its
own ``method_kwargs``.
"""

from __future__ import annotations

import warnings
from typing import Any

from omegaconf import DictConfig, ListConfig, open_dict

from fkt_plugin.args.schemas import RunSchema, defaults_of
from fkt_plugin.args.solo_lars import translate_solo_lars_kwargs
from fkt_plugin.augmentation import parse_pipelines
from fkt_plugin.augmentation.schema import BACKENDS, check_device_resident
from fkt_plugin.backbones import check_backbone_kwargs
from fkt_plugin.config import (
    fill_defaults,
    mapping_copy,
    require_choice,
    require_in_range,
    require_positive,
    require_positive_int,
    unknown_settings,
)
from fkt_plugin.data import DATASETS
from fkt_plugin.data.files import BAD_IMAGE_POLICIES
from fkt_plugin.data.splits import VAL_LABELS
from fkt_plugin.errors import ConfigError
from fkt_plugin.loggers import LOGGERS
from fkt_plugin.methods import METHODS
from fkt_plugin.optimizers import OPTIMIZERS, SCHEDULERS, WARMUP_SCHEDULERS

RUN_DEFAULTS: dict[str, Any] = defaults_of(RunSchema)
"""What a recipe leaves out (:class:`fkt_plugin.args.schemas.RunSchema`)."""


# solo-learn's rule: ResNets on these CIFAR-sized images get the 3x3 stem without max-pool.
SMALL_IMAGE_DATASETS = ("cifar10", "cifar100", "fashion_mnist")


def validate_run_cfg(cfg: DictConfig) -> DictConfig:
    """Fills defaults into a run cfg and validates it, including the method's own kwargs.

    Args:
        cfg: A recipe as loaded by hydra (solo-learn schema).

    Returns:
        A completed, untyped copy (a recipe composed on :class:`RunSchema` is typed: its types
        were checked when hydra composed it; the completion adds keys the schema does not have).

    Raises:
        ConfigError: A value is missing or out of range; the message says which and how to fix it.
        UnknownNameError: The method, backbone or dataset name is not registered.
    """
    if cfg.get("method") is None:
        raise ConfigError(
            "no method given: pass a recipe (e.g. --config-path recipes/pretrain/fashion_mnist "
            "--config-name fkt_joint) or method=<name>; known methods: "
            f"{', '.join(sorted(METHODS))}"
        )
    method_cls = METHODS[cfg.method]
    cfg = mapping_copy(cfg)
    extra = unknown_settings(cfg, RUN_DEFAULTS, free_form=("method", "augmentations"))
    if extra:
        warnings.warn(f"config keys not used by fkt-train: {', '.join(extra)}", stacklevel=2)
    fill_defaults(cfg, RUN_DEFAULTS)
    check_backbone_kwargs(cfg.backbone.name, cfg.backbone.kwargs)
    DATASETS[cfg.data.dataset]
    _check_data(cfg.data)
    _check_optimisation(cfg)
    require_choice(cfg.logger, "logger", tuple(LOGGERS))
    _resolve_selection(cfg)
    if (cfg.backbone.name.startswith("resnet") and "small_stem" not in cfg.backbone.kwargs
            and cfg.data.dataset in SMALL_IMAGE_DATASETS):
        with open_dict(cfg):
            cfg.backbone.kwargs.small_stem = True
    if cfg.get("augmentations") is None:
        raise ConfigError(
            "augmentations is missing: add a list of pipelines (solo-learn's schema), e.g. "
            "defaults: [_self_, {augmentations: symmetric.yaml}]"
        )
    if not isinstance(cfg.augmentations, ListConfig):
        raise ConfigError("augmentations must be a list of pipelines (solo-learn's schema)")
    parse_pipelines(cfg.augmentations)
    with open_dict(cfg):
        if cfg.name is None:
            cfg.name = (f"{cfg.method}-{cfg.data.dataset}-labels{cfg.data.label_fraction:g}"
                        f"-seed{cfg.seed}")
        # YAML reads name=123 or name=nan as a number; a run name is a string.
        cfg.name = str(cfg.name)
    return method_cls.add_and_assert_specific_cfg(cfg)


SELECTIONS = ("best_val", "last")


def _resolve_selection(cfg: DictConfig) -> None:
    """Fills ``selection`` (null: best_val with a validation split, else last) and checks it."""
    if cfg.selection is None:
        with open_dict(cfg):
            cfg.selection = "last" if cfg.data.val_labels == "none" else "best_val"
    require_choice(cfg.selection, "selection", SELECTIONS)
    if cfg.selection == "best_val" and cfg.data.val_labels == "none":
        raise ConfigError("selection=best_val needs a validation split, but data.val_labels=none "
                          "has none: set selection=last, or data.val_labels=budget")


BATCH_SAMPLERS = ("random", "guided")
"""``data.batch_sampler``: uniform batches, or G-SimCLR's cluster-guided ones."""


def _check_data(data: DictConfig) -> None:
    require_in_range(data.label_fraction, "data.label_fraction", 0.0, 1.0, low_open=True)
    require_in_range(data.val_fraction, "data.val_fraction", 0.0, 0.5)
    require_choice(data.val_labels, "data.val_labels", VAL_LABELS)
    require_choice(data.on_bad_image, "data.on_bad_image", BAD_IMAGE_POLICIES)
    if data.image_size is not None:
        require_positive_int(data.image_size, "data.image_size")
    require_choice(data.augmentation_backend, "data.augmentation_backend", BACKENDS)
    check_device_resident(data.device_resident, data.augmentation_backend)
    if data.labelled_share is not None:
        require_in_range(data.labelled_share, "data.labelled_share", 0.0, 1.0, low_open=True)
    require_choice(data.batch_sampler, "data.batch_sampler", BATCH_SAMPLERS)
    if data.batch_sampler == "guided":
        if data.pseudo_labels is None:
            raise ConfigError("data.batch_sampler=guided needs data.pseudo_labels=<file.npz>: "
                              "cluster ids from fkt-cluster (e.g. of a dae run, k = batch size)")
        if data.labelled_share is not None:
            # Both fix what goes into a batch; composing them would break one or the other.
            raise ConfigError(f"data.batch_sampler=guided and data.labelled_share="
                              f"{data.labelled_share} cannot be combined: set "
                              "data.labelled_share=null (guided batches draw from the whole pool)")


def _check_optimisation(cfg: DictConfig) -> None:
    require_choice(cfg.optimizer.name, "optimizer.name", tuple(OPTIMIZERS))
    if cfg.optimizer.name == "lars":
        translate_solo_lars_kwargs(cfg.optimizer)
    require_choice(cfg.scheduler.name, "scheduler.name", tuple(SCHEDULERS))
    for key in ("lr", "classifier_lr"):
        require_positive(cfg.optimizer[key], f"optimizer.{key}")
    require_positive_int(cfg.optimizer.batch_size, "optimizer.batch_size")
    require_positive_int(cfg.max_epochs, "max_epochs")
    if cfg.max_steps is not None:
        require_positive_int(cfg.max_steps, "max_steps")
    if cfg.val_every_n_steps is not None:
        require_positive_int(cfg.val_every_n_steps, "val_every_n_steps")
    warmup = cfg.scheduler.warmup_epochs
    require_in_range(warmup, "scheduler.warmup_epochs", 0.0, float("inf"))
    # A max_steps run checks its warm-up when its epoch size is known (configure_optimizers).
    if (cfg.scheduler.name in WARMUP_SCHEDULERS and cfg.max_steps is None
            and warmup > cfg.max_epochs):
        # lightly's scheduler would stop the run at its first step with a bare ValueError.
        raise ConfigError(f"scheduler.warmup_epochs={warmup:g} is longer than the run "
                          f"(max_epochs={cfg.max_epochs}): lower it, e.g. "
                          f"scheduler.warmup_epochs={min(warmup, cfg.max_epochs / 10):g}")
