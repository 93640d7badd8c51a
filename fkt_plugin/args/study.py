"""The schema of a study (``fkt-study``): the user's data, a budget, and the template's arms,
recipe families, schedule, pilot and delivery."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from fkt_plugin.args.compare import check_arm
from fkt_plugin.args.schemas import LAUNCHERS, FamilySchema, StudySchema, defaults_of
from fkt_plugin.config import (
    fill_defaults,
    mapping_copy,
    require_choice,
    require_in_range,
    require_positive,
    require_positive_int,
    unknown_keys,
    unknown_settings,
)
from fkt_plugin.errors import ConfigError

STUDY_DEFAULTS: dict[str, Any] = defaults_of(StudySchema)
"""A study's settings (:class:`fkt_plugin.args.schemas.StudySchema`)."""
FAMILY_DEFAULTS: dict[str, Any] = defaults_of(FamilySchema)
BACKBONE_CHOICES = ("auto", "cpu", "gpu")
MIN_SEEDS = 3
"""Fewer seeds give paired intervals too wide to recommend anything."""


def validate_study_cfg(cfg: DictConfig) -> DictConfig:
    """Fills :data:`STUDY_DEFAULTS` and validates.

    Raises:
        ConfigError: Unknown keys, no dataset, no budget or two, a fraction outside (0, 1], arms
            with a schedule of their own, fewer than three seeds, or an inverted range.
    """
    cfg = mapping_copy(cfg)
    extra = unknown_settings(cfg, STUDY_DEFAULTS, free_form=("arms", "families", "eval"))
    if extra:
        raise ConfigError(f"unknown study keys: {', '.join(extra)}; known: "
                          f"{', '.join(STUDY_DEFAULTS)}")
    fill_defaults(cfg, STUDY_DEFAULTS)
    if cfg.data.dataset is None:
        raise ConfigError("data.dataset is missing: name your dataset as a training recipe does, "
                          "e.g. data.dataset=folder data.train_path=<root> data.image_size=96 "
                          "(a folder of <class>/<image> folders), or data.dataset=fashion_mnist")
    budget = cfg.budget
    if (budget.minutes is None) == (budget.gpu_hours is None):
        raise ConfigError("give the study one budget: budget.minutes=<wall minutes of this "
                          "machine> or budget.gpu_hours=<hours of GPU time>")
    require_positive(budget.minutes if budget.minutes is not None else budget.gpu_hours,
                     "budget.minutes" if budget.minutes is not None else "budget.gpu_hours")
    if not budget.fractions:
        raise ConfigError("budget.fractions is empty: give shares of your labels in (0, 1], "
                          "e.g. budget.fractions=[1.0] (every label you have)")
    for fraction in budget.fractions:
        require_in_range(fraction, "budget.fractions[...]", 0.0, 1.0, low_open=True)
    if not cfg.arms:
        raise ConfigError("arms is empty: the template (recipes/study/default.yaml) lists them")
    names: set[str] = set()
    for i, arm in enumerate(cfg.arms):
        check_arm(arm, i, names)
        if arm.epochs is not None or arm.steps is not None:
            raise ConfigError(f"arms[{i}] ({arm.name}) sets epochs or steps: a study's plan sets "
                              "every arm's steps from the budget (schedule.* bounds them)")
    if len(names) < 2:
        raise ConfigError("a study compares at least two arms")
    for i, family in enumerate(cfg.families):
        bad = unknown_keys(family, FAMILY_DEFAULTS)
        if bad:
            raise ConfigError(f"families[{i}] has unknown keys {', '.join(bad)}")
        fill_defaults(family, FAMILY_DEFAULTS, prefix=f"families[{i}].")
    require_choice(cfg.backbone, "backbone", BACKBONE_CHOICES)
    schedule = cfg.schedule
    for key in ("min_steps", "max_steps", "min_seeds", "max_seeds", "validations",
                "min_labels_per_class"):
        require_positive_int(schedule[key], f"schedule.{key}")
    if schedule.min_seeds < MIN_SEEDS:
        raise ConfigError(f"schedule.min_seeds={schedule.min_seeds}: a recommendation needs at "
                          f"least {MIN_SEEDS} seeds (paired intervals of fewer are too wide)")
    for low, high in (("min_steps", "max_steps"), ("min_seeds", "max_seeds")):
        if schedule[low] > schedule[high]:
            raise ConfigError(f"schedule.{low}={schedule[low]} is above "
                              f"schedule.{high}={schedule[high]}")
    require_positive_int(cfg.pilot.steps, "pilot.steps")
    if cfg.pilot.steps < 4:
        raise ConfigError(f"pilot.steps={cfg.pilot.steps}: the pilot times steps after the first "
                          "two (which warm up); give at least 4")
    require_positive_int(cfg.processes, "processes")
    require_choice(cfg.launcher.name, "launcher", LAUNCHERS)
    return cfg
