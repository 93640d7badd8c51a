"""The schema of a comparison sweep (``fkt-compare``): arms × label fractions × seeds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, open_dict

from fkt_plugin.args.evaluation import validate_eval_cfg
from fkt_plugin.args.run import SELECTIONS
from fkt_plugin.args.schemas import (
    DEFAULT_SEEDS,
    LAUNCHERS,
    ArmSchema,
    CompareSchema,
    defaults_of,
)
from fkt_plugin.config import (
    fill_defaults,
    mapping_copy,
    require_choice,
    require_in_range,
    require_positive,
    require_positive_int,
    resolve_per_fraction,
    unknown_keys,
    unknown_settings,
)
from fkt_plugin.data.splits import VAL_LABELS
from fkt_plugin.errors import ConfigError
from fkt_plugin.evaluation.protocol_registry import PROTOCOLS

COMPARE_DEFAULTS: dict[str, Any] = defaults_of(CompareSchema)
"""A sweep's settings (:class:`fkt_plugin.args.schemas.CompareSchema`)."""
ARM_DEFAULTS: dict[str, Any] = defaults_of(ArmSchema)
# fkt-cluster settings an arm's ``cluster`` block may hold.
ARM_CLUSTER_KEYS = ("pca_dim", "whiten", "l2_normalize", "restarts", "iterations", "use_gpu",
                    "batch_size", "checkpoint")


def validate_compare_cfg(cfg: DictConfig) -> DictConfig:
    """Fills :data:`COMPARE_DEFAULTS` (and each arm's :data:`ARM_DEFAULTS`) and validates.

    Raises:
        ConfigError: Unknown keys, no arms, an arm without name/recipe/epochs, an unknown
            protocol, duplicate arm names, empty seeds, or a fraction outside (0, 1].
    """
    cfg = mapping_copy(cfg)  # untyped: the checks below complete it
    extra = unknown_settings(cfg, COMPARE_DEFAULTS, free_form=("arms", "eval"))
    if extra:
        raise ConfigError(f"unknown compare keys: {', '.join(extra)}; known: "
                          f"{', '.join(COMPARE_DEFAULTS)}")
    fill_defaults(cfg, COMPARE_DEFAULTS)
    if cfg.seeds is None:
        cfg.seeds = list(DEFAULT_SEEDS)
    if cfg.recipes is None:
        raise ConfigError("recipes is not set: give the folder of the arms' training recipes")
    if not cfg.seeds:
        raise ConfigError("seeds is empty: give at least one seed, e.g. seeds=[0]")
    if isinstance(cfg.seeds, Mapping):
        outside = [f for f in cfg.seeds if float(f) not in [float(x) for x in cfg.fractions]]
        missing = [f for f in cfg.fractions if float(f) not in [float(x) for x in cfg.seeds]]
        if outside or missing or any(not cfg.seeds[f] for f in cfg.seeds):
            raise ConfigError(f"seeds maps label fractions to seed lists: give a non-empty list "
                              f"for each of fractions={list(cfg.fractions)} (extra: {outside}, "
                              f"missing: {missing})")
    if not cfg.fractions:
        raise ConfigError("fractions is empty: give label fractions in (0, 1], e.g. [0.1]")
    for fraction in cfg.fractions:
        require_in_range(fraction, "fractions[...]", 0.0, 1.0, low_open=True)
    if not cfg.arms:
        raise ConfigError("arms is empty: declare at least one arm (name, recipe, epochs)")
    names: set[str] = set()
    for i, arm in enumerate(cfg.arms):
        check_arm(arm, i, names)
        if (arm.epochs is None) == (arm.steps is None):
            raise ConfigError(f"arms[{i}] ({arm.name}) needs epochs or steps (one of them): how "
                              "long its training runs")
        if arm.fractions is not None:
            outside = [f for f in arm.fractions if f not in cfg.fractions]
            if outside or not arm.fractions:
                raise ConfigError(f"arms[{i}].fractions={list(arm.fractions)} must be a "
                                  f"non-empty subset of fractions={list(cfg.fractions)}")
        for fraction in arm.fractions or cfg.fractions:
            if arm.steps is None:
                resolve_per_fraction(arm.epochs, fraction, f"arms[{i}].epochs")
            else:
                resolve_per_fraction(arm.steps, fraction, f"arms[{i}].steps")
    require_positive_int(cfg.processes, "processes")
    if cfg.val_labels is not None:
        require_choice(cfg.val_labels, "val_labels", VAL_LABELS)
    if cfg.selection is not None:
        require_choice(cfg.selection, "selection", SELECTIONS)
    _check_students(cfg)
    _check_launcher(cfg.launcher)
    for i, pair in enumerate(cfg.paired):
        if len(pair) != 2 or any(name not in names for name in pair) or pair[0] == pair[1]:
            raise ConfigError(f"paired[{i}]={list(pair)} must be two different arm names; arms: "
                              f"{', '.join(map(str, names))}")
    with open_dict(cfg):
        cfg.eval = validate_eval_cfg(mapping_copy(cfg.eval, "eval"))
    return cfg


def check_arm(arm: DictConfig, i: int, names: set[str]) -> None:
    """Fills an arm's defaults and checks what every arm needs (fkt-compare's and fkt-study's):
    known keys, a name and a recipe, a unique name (added to ``names``), a known protocol.

    Raises:
        ConfigError: Naming ``arms[i]`` and the fix.
    """
    bad = unknown_keys(arm, ARM_DEFAULTS)
    if bad:
        raise ConfigError(f"arms[{i}] has unknown keys {', '.join(bad)}; known: "
                          f"{', '.join(ARM_DEFAULTS)}")
    fill_defaults(arm, ARM_DEFAULTS, prefix=f"arms[{i}].")
    for key in ("name", "recipe"):
        if arm[key] is None:
            raise ConfigError(f"arms[{i}].{key} is missing")
    if arm.name in names:
        raise ConfigError(f"two arms are named {arm.name!r}; arm names must be unique")
    names.add(str(arm.name))
    if arm.protocol is not None and arm.protocol not in PROTOCOLS:
        raise ConfigError(f"arms[{i}].protocol={arm.protocol!r} is unknown; use null (the "
                          f"run's own classifier) or one of {', '.join(PROTOCOLS)}")


def seeds_for(cfg: DictConfig, fraction: float) -> list[int]:
    """The seeds of a validated compare cfg at one label fraction."""
    if isinstance(cfg.seeds, Mapping):
        return [int(s) for f, seeds in cfg.seeds.items() if float(f) == fraction for s in seeds]
    return [int(s) for s in cfg.seeds]


def _check_students(cfg: DictConfig) -> None:
    """Arms with a teacher: the teacher is another arm that is not a student itself, k is an int
    >= 2 (cluster transfer) or absent (distillation), a protocol scores the student on the real
    labels, and the cluster keys are known."""
    by_name = {arm.name: arm for arm in cfg.arms}
    for i, arm in enumerate(cfg.arms):
        if arm.teacher is None:
            if arm.k is not None or arm.cluster:
                raise ConfigError(f"arms[{i}] sets k or cluster without a teacher")
            continue
        teacher = by_name.get(arm.teacher)
        if teacher is None or teacher.name == arm.name:
            raise ConfigError(f"arms[{i}].teacher={arm.teacher!r} is not another arm; arms: "
                              f"{', '.join(by_name)}")
        if teacher.teacher is not None:
            raise ConfigError(f"arms[{i}].teacher={arm.teacher!r} is itself a student; a "
                              "teacher must be trained directly")
        if arm.k is None:
            # Distillation: the teacher's run directory goes to the recipe's
            # method_kwargs.teacher.run_dir (mvmr_distill), no clustering.
            if arm.cluster:
                raise ConfigError(f"arms[{i}] sets cluster without k: give k to cluster the "
                                  "teacher's features, or drop cluster to distil from it")
        elif isinstance(arm.k, bool) or not isinstance(arm.k, int) or arm.k < 2:
            raise ConfigError(f"arms[{i}].k={arm.k!r} must be an int >= 2")
        if arm.protocol is None:
            raise ConfigError(f"arms[{i}] is a student (teacher={arm.teacher!r}): give a "
                              f"protocol ({', '.join(PROTOCOLS)}) to score it on the real labels")
        unknown = sorted(set(map(str, arm.cluster)) - set(ARM_CLUSTER_KEYS))
        if unknown:
            raise ConfigError(f"arms[{i}].cluster has unknown keys {', '.join(unknown)}; known: "
                              f"{', '.join(ARM_CLUSTER_KEYS)}")


SUBMITIT_CLUSTERS = ("slurm", "local", "debug")
"""``launcher.cluster``: submitit's executors (local and debug run the jobs on this machine)."""


def _check_launcher(launcher: DictConfig) -> None:
    """The launcher block: a known launcher and cluster, positive resources."""
    require_choice(launcher.name, "launcher.name", LAUNCHERS)
    require_choice(launcher.cluster, "launcher.cluster", SUBMITIT_CLUSTERS)
    for key in ("cpus_per_job", "mem_gb", "timeout_min", "max_parallel"):
        require_positive_int(launcher[key], f"launcher.{key}")
    if isinstance(launcher.gpus_per_job, bool) or not isinstance(launcher.gpus_per_job, int) \
            or launcher.gpus_per_job < 0:
        raise ConfigError(f"launcher.gpus_per_job={launcher.gpus_per_job!r} must be an int >= 0")
    if launcher.seconds_per_job is not None:
        require_positive(launcher.seconds_per_job, "launcher.seconds_per_job")
    if launcher.dry_run and launcher.cluster != "slurm":
        raise ConfigError("launcher.dry_run=true writes SLURM's sbatch scripts: it needs "
                          f"launcher.cluster=slurm (got {launcher.cluster})")
