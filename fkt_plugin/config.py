"""Run configuration: every default in one place, and validation at the edge.

A run's cfg follows solo-learn's recipe schema (``method``, ``backbone``, ``method_kwargs``,
``data``, ``optimizer``, ``scheduler``, ``checkpoint``, ``auto_resume``, ``augmentations``,
``max_epochs``, ...). :func:`validate_run_cfg` fills what a recipe leaves out from
:data:`RUN_DEFAULTS`, checks values, and lets the chosen method fill its own ``method_kwargs``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the key and the fix."""


RUN_DEFAULTS: dict[str, Any] = {
    "name": None,
    "seed": 5,
    "backbone": {"name": "small_cnn", "kwargs": {}},
    "method_kwargs": {},
    # A checkpoint whose backbone initialises this run (ours, solo-learn's, or a state dict).
    "pretrained_feature_extractor": None,
    "data": {
        "dataset": "fashion_mnist",
        "train_path": None,
        "val_path": None,
        "label_fraction": 1.0,
        "val_fraction": 0.1,
        "split_seed": 0,
        "num_workers": 0,
        # kornia: views made on the training device from uint8 batches; torchvision: per image
        # in the loader workers (solo-learn's way), for comparison on the same recipe.
        "augmentation_backend": "kornia",
        # null: pin host memory when CUDA is available.
        "pin_memory": None,
        "persistent_workers": True,
        # null: uniform batches; a share in (0, 1]: that share of every batch is labelled.
        "labelled_share": None,
        # Adapters of image files: decode once to image_size (null: the dataset's own size)
        # into cache_dir (null: $FKT_DATA_HOME or ~/.cache/fkt_plugin); skip or stop at a file
        # that does not decode.
        "image_size": None,
        "cache_dir": None,
        "on_bad_image": "skip",
        # folder: a folder of unlabelled images added to the self-supervised pool.
        "unlabelled_path": None,
        # stl10: one of the 10 official folds as the labelled images (null: all).
        "fold": None,
        # aptos, and folder without val_path: the stratified share held out as the test split.
        "holdout_fraction": 0.2,
        # Weight the classification loss by inverse class frequency (imbalanced datasets).
        "class_weighted_loss": False,
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
    # Channels-last convolutions (solo-learn's key); torch.compile of the backbone, off by
    # default because compiling costs minutes and needs a C compiler.
    "performance": {"disable_channel_last": False, "compile": False, "compile_mode": None},
    "knn_eval": {"enabled": True, "k": 20, "temperature": 0.07},
    "checkpoint": {"enabled": True, "dir": "trained_models", "frequency": 1},
    "auto_resume": {"enabled": True},
    "max_epochs": 100,
    "accelerator": "auto",
    "devices": 1,
    "num_nodes": 1,
    # Lightning's strategy (ddp for several devices); BatchNorm synchronised across processes.
    "strategy": "auto",
    "sync_batchnorm": False,
    # 32-true, bf16-mixed (GPUs from Ampere on, and CPUs), 16-mixed.
    "precision": "32-true",
    "log_every_n_steps": 20,
}

OPTIMIZERS = ("sgd", "lars", "adam", "adamw")
SCHEDULERS = ("warmup_cosine", "cosine", "none")

# Keys that hydra itself consumes.
_HYDRA_KEYS = {"hydra", "defaults"}


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


SMALL_IMAGE_DATASETS = ("cifar10", "cifar100", "fashion_mnist")

# The training recipes of a source checkout: recipes/pretrain/<dataset>/<method>.yaml.
PRETRAIN_RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "pretrain"

# solo-learn's LARS keywords → lightly's LARS (None: lightly's LARS has no such option).
_SOLO_LARS_KWARGS = {"eta": "trust_coefficient", "clip_lr": None, "exclude_bias_n_norm": None}


def _translate_solo_lars_kwargs(optimizer: DictConfig) -> None:
    """Renames solo-learn's LARS kwargs to lightly's and reports those lightly lacks."""
    dropped = []
    with open_dict(optimizer):
        for key, ours in _SOLO_LARS_KWARGS.items():
            if key not in optimizer.kwargs:
                continue
            value = optimizer.kwargs.pop(key)
            if ours is None:
                dropped.append(f"{key}={value}")
            else:
                optimizer.kwargs[ours] = value
    if dropped:
        warnings.warn(f"optimizer.kwargs {', '.join(dropped)}: solo-learn's LARS options that "
                      "lightly's LARS does not have (ignored)", stacklevel=3)


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
    from fkt_plugin.augmentation import parse_pipelines, require_backend
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
    if cfg.data.on_bad_image not in ("skip", "error"):
        raise ConfigError(f"data.on_bad_image={cfg.data.on_bad_image!r}; use skip or error")
    if cfg.data.image_size is not None and not (isinstance(cfg.data.image_size, int)
                                                and cfg.data.image_size > 0):
        raise ConfigError(f"data.image_size={cfg.data.image_size!r} must be an int > 0")
    require_backend(cfg.data.augmentation_backend)
    if cfg.data.labelled_share is not None:
        require_in_range(cfg.data.labelled_share, "data.labelled_share", 0.0, 1.0, low_open=True)
    if cfg.optimizer.name not in OPTIMIZERS:
        raise ConfigError(
            f"optimizer.name={cfg.optimizer.name!r} is unknown; use one of {', '.join(OPTIMIZERS)}"
        )
    if cfg.optimizer.name == "lars":
        _translate_solo_lars_kwargs(cfg.optimizer)
    if (cfg.backbone.name.startswith("resnet") and "small_stem" not in cfg.backbone.kwargs
            and cfg.data.dataset in SMALL_IMAGE_DATASETS):
        # solo-learn's rule: ResNets on CIFAR-sized images get the 3x3 stem without max-pool.
        with open_dict(cfg):
            cfg.backbone.kwargs.small_stem = True
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
    "finetune": {"max_epochs": 20, "lr": 0.03, "weight_decay": 5e-4, "warmup_epochs": 1,
                 "augmentations": None},
    "plots": {"confusion_matrix": True, "embedding": True, "embedding_samples": 2000},
}


def validate_eval_cfg(cfg: DictConfig) -> DictConfig:
    """Fills :data:`EVAL_DEFAULTS` into an evaluation cfg and validates it.

    Raises:
        ConfigError: An unknown key or protocol, or a value out of range.
    """
    extra = [k for k in unknown_keys(cfg, EVAL_DEFAULTS) if k.split(".")[0] not in _HYDRA_KEYS]
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
        value = OmegaConf.select(cfg, key)
        if not (isinstance(value, int) and value > 0):
            raise ConfigError(f"{key}={value!r} must be an int > 0")
    for key in ("mlp.lr", "finetune.lr", "knn.temperature"):
        if not OmegaConf.select(cfg, key) > 0:
            raise ConfigError(f"{key}={OmegaConf.select(cfg, key)!r} must be > 0")
    return cfg


# A comparison sweep (fkt-compare): arms × label fractions × seeds.
COMPARE_DEFAULTS: dict[str, Any] = {
    # Folder of the arms' training recipes; relative paths start at the compare recipe's folder.
    "recipes": None,
    "out": "compare_runs",
    "fractions": [0.01, 0.1, 1.0],
    "seeds": [0, 1, 2],
    # Hydra overrides applied to every training run of the sweep.
    "overrides": [],
    "arms": [],
    # Settings of the evaluation protocols (keys of EVAL_DEFAULTS; run_dir etc. are set per run).
    "eval": {},
    # The t-SNE figure shows every arm at one label fraction (null: the smallest) and seed
    # (null: the first).
    "embedding": {"fraction": None, "seed": None, "samples": 2000},
    # true: train nothing, summarise the runs finished so far.
    "summary_only": False,
}

ARM_DEFAULTS: dict[str, Any] = {
    "name": None,
    "recipe": None,
    "recipe_overrides": [],
    # An int, or a mapping label fraction → epochs (fewer labels, more epochs per label).
    "epochs": None,
    # null: the run's own classifier; else an evaluation protocol of the trained backbone.
    "protocol": None,
    "overrides": [],
    # null: every fraction of the sweep; else the subset this arm runs at.
    "fractions": None,
}


def epochs_for(value: Any, fraction: float, key: str) -> int:
    """Resolves an epochs setting that is an int or a mapping label fraction → int."""
    if isinstance(value, Mapping):
        matches = [v for f, v in value.items() if abs(float(f) - fraction) < 1e-12]
        if not matches:
            raise ConfigError(f"{key} has no entry for label fraction {fraction:g} (it has "
                              f"{', '.join(f'{float(f):g}' for f in value)})")
        value = matches[0]
    if not (isinstance(value, int) and value > 0):
        raise ConfigError(f"{key}={value!r} must be an int > 0 or a mapping fraction → int")
    return value


def validate_compare_cfg(cfg: DictConfig) -> DictConfig:
    """Fills :data:`COMPARE_DEFAULTS` (and each arm's :data:`ARM_DEFAULTS`) and validates.

    Raises:
        ConfigError: Unknown keys, no arms, an arm without name/recipe/epochs, an unknown
            protocol, duplicate arm names, empty seeds, or a fraction outside (0, 1].
    """
    extra = [k for k in unknown_keys(cfg, COMPARE_DEFAULTS) if k.split(".")[0] not in _HYDRA_KEYS]
    extra = [k for k in extra if not k.startswith(("arms", "eval"))]
    if extra:
        raise ConfigError(f"unknown compare keys: {', '.join(extra)}; known: "
                          f"{', '.join(COMPARE_DEFAULTS)}")
    fill_defaults(cfg, COMPARE_DEFAULTS)
    if cfg.recipes is None:
        raise ConfigError("recipes is not set: give the folder of the arms' training recipes")
    if not cfg.seeds:
        raise ConfigError("seeds is empty: give at least one seed, e.g. seeds=[0]")
    if not cfg.fractions:
        raise ConfigError("fractions is empty: give label fractions in (0, 1], e.g. [0.1]")
    for fraction in cfg.fractions:
        require_in_range(fraction, "fractions[...]", 0.0, 1.0, low_open=True)
    if not cfg.arms:
        raise ConfigError("arms is empty: declare at least one arm (name, recipe, epochs)")
    names = set()
    for i, arm in enumerate(cfg.arms):
        bad = unknown_keys(arm, ARM_DEFAULTS)
        if bad:
            raise ConfigError(f"arms[{i}] has unknown keys {', '.join(bad)}; known: "
                              f"{', '.join(ARM_DEFAULTS)}")
        fill_defaults(arm, ARM_DEFAULTS, prefix=f"arms[{i}].")
        for key in ("name", "recipe", "epochs"):
            if arm[key] is None:
                raise ConfigError(f"arms[{i}].{key} is missing")
        if arm.name in names:
            raise ConfigError(f"two arms are named {arm.name!r}; arm names must be unique")
        names.add(arm.name)
        if arm.protocol is not None and arm.protocol not in PROTOCOLS:
            raise ConfigError(f"arms[{i}].protocol={arm.protocol!r} is unknown; use null (the "
                              f"run's own classifier) or one of {', '.join(PROTOCOLS)}")
        if arm.fractions is not None:
            outside = [f for f in arm.fractions if f not in cfg.fractions]
            if outside or not arm.fractions:
                raise ConfigError(f"arms[{i}].fractions={list(arm.fractions)} must be a "
                                  f"non-empty subset of fractions={list(cfg.fractions)}")
        for fraction in arm.fractions or cfg.fractions:
            epochs_for(arm.epochs, fraction, f"arms[{i}].epochs")
    with open_dict(cfg):
        cfg.eval = validate_eval_cfg(OmegaConf.create(OmegaConf.to_container(cfg.eval)))
    return cfg


def compose_recipe(recipe: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """Composes a recipe file (its ``defaults:`` list, augmentation files) with hydra overrides.

    Works inside a running hydra application too (fkt-eval, fkt-compare): the application's
    global hydra state is set aside for the composition and restored after it.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    recipe = Path(recipe)
    state = GlobalHydra.instance()
    saved = state.hydra if state.is_initialized() else None
    state.clear()
    try:
        with initialize_config_dir(config_dir=str(recipe.resolve().parent), version_base="1.3"):
            return compose(config_name=recipe.stem, overrides=list(overrides))
    finally:
        if saved is not None:
            GlobalHydra.instance().initialize(saved)
