"""A study's plan: the compare recipe it runs (arms at matched steps, fractions, seeds, labels
inside the budget, scored at the last step), sized to the budget from the pilot's costs, and
kept in ``<out>/plan.json`` so that the same command resumes the same study."""

from __future__ import annotations

import itertools
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from fkt_plugin.config import plain_dict
from fkt_plugin.errors import ConfigError
from fkt_plugin.study.look import DataFacts, labelled_at
from fkt_plugin.study.pilot import ArmCost

SAFETY = 0.85
"""Share of the budget the plan fills: the pilot's estimate leaves out the report, the
pictures and the noise of a shared machine."""


@dataclass
class StudyPlan:
    """What a study runs, and why: the data, the family, the schedule and its estimate."""

    facts: dict[str, Any]
    machine: str
    data: list[str]
    family: str
    recipes: str
    backbone: str
    overrides: list[str]
    fractions: list[float]
    steps: int
    seeds: list[int]
    finetune_epochs: dict[str, int]
    budget: dict[str, Any]
    budget_seconds: float
    pilot_seconds: float
    estimate_seconds: float
    costs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: Path) -> StudyPlan:
        return cls(**json.loads(path.read_text()))


def machine() -> str:
    """The machine a plan was timed on: its cores and GPU."""
    gpu = (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")
    threads = torch.get_num_threads()
    return (f"{os.cpu_count()} CPU cores ({threads} torch thread{'s' if threads != 1 else ''}), "
            f"{gpu}")


def budget_seconds(cfg: DictConfig) -> float:
    """The budget in seconds of wall time."""
    if cfg.budget.minutes is not None:
        return 60.0 * float(cfg.budget.minutes)
    return 3600.0 * float(cfg.budget.gpu_hours)


def budget_text(seconds: float) -> str:
    """Seconds as minutes (one decimal under ten) or, from 90 minutes, hours."""
    if seconds < 600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def validations_every(steps: int, validations: int) -> int:
    return max(1, steps // validations)


def finetune_epochs(facts: DataFacts, fraction: float, steps: int, batch_size: int,
                    val_fraction: float) -> int:
    """Epochs of the labelled training images that make about ``steps`` fine-tuning steps."""
    labelled = sum(labelled_at(count, fraction) for count in facts.labelled)
    train = max(1, labelled - max(len(facts.labelled), round(val_fraction * labelled)))
    return max(1, round(steps / max(1, math.ceil(train / batch_size))))


def compare_recipe(cfg: DictConfig, *, recipes: str, overrides: list[str], out: str,
                   fractions: list[float], seeds: list[int], steps: int,
                   epochs: dict[str, int], val_labels: str = "budget",
                   arms: list[str] | None = None,
                   validations: int | None = None) -> dict[str, Any]:
    """The fkt-compare recipe of a study (or of its pilot, or of the delivered model).

    Args:
        cfg: The validated study cfg.
        recipes: The family's recipe folder (relative to ``out``, where the recipe is written).
        overrides: Every run's overrides (data, family, backbone, the user's).
        out: The sweep's folder.
        fractions, seeds, steps: The design.
        epochs: Fine-tuning epochs per fraction (as a string key).
        val_labels: ``budget`` (the study), or ``none`` (a delivered model without validation).
        arms: Only these arms (default: every arm).
        validations: Validations per run (default: ``schedule.validations``).
    """
    every = validations_every(steps, validations or int(cfg.schedule.validations))
    chosen = [plain_dict(arm) for arm in cfg.arms if arms is None or arm.name in arms]
    evaluation = plain_dict(cfg.eval)
    finetune = {**evaluation.get("finetune", {}), "val_every_n_steps": every,
                "max_epochs": {float(f): epochs[str(float(f))] for f in fractions}}
    names = [arm["name"] for arm in chosen]
    return {
        "defaults": ["fkt_compare", "_self_", {"override hydra/hydra_logging": "disabled"},
                     {"override hydra/job_logging": "disabled"}],
        "hydra": {"output_subdir": None, "run": {"dir": "."}},
        "recipes": recipes, "out": out, "fractions": fractions, "seeds": seeds,
        "overrides": [*overrides, f"val_every_n_steps={every}"],
        "arms": [{**{k: v for k, v in arm.items() if v not in (None, [], {})}, "steps": steps}
                 for arm in chosen],
        "eval": {**evaluation, "finetune": finetune},
        "val_labels": val_labels, "selection": "last",
        "paired": [list(pair) for pair in itertools.combinations(names, 2)],
        "processes": int(cfg.processes), "launcher": plain_dict(cfg.launcher),
    }


def relative_to(path: Path, start: Path) -> str:
    """``path`` relative to ``start`` (a written recipe names no machine path)."""
    return os.path.relpath(path.resolve(), start.resolve())


@dataclass(frozen=True)
class Sizing:
    steps: int
    seeds: int
    estimate_seconds: float


def _linear_cost(costs: dict[str, ArmCost], arms: list[str], fractions: int,
                 validations: int) -> tuple[float, float]:
    """One seed's seconds as ``fixed + per_step · steps``: arms scored by their own classifier
    train once per fraction; a shared pre-training once per seed; evaluations once per
    fraction; every training run and fine-tuning validates ``validations`` times."""
    fixed = per_step = 0.0
    pretrainings: dict[str, ArmCost] = {}
    for arm in arms:
        cost = costs[arm]
        checks = validations * cost.seconds_per_validation
        if cost.eval_fixed_seconds == 0.0 and cost.eval_seconds_per_step == 0.0:
            fixed += fractions * (cost.fixed_seconds + checks)
            per_step += fractions * cost.seconds_per_step
        else:
            pretrainings[cost.run] = cost
            tuned = checks if cost.eval_seconds_per_step else 0.0
            fixed += fractions * (cost.eval_fixed_seconds + tuned)
            per_step += fractions * cost.eval_seconds_per_step
    fixed += sum(c.fixed_seconds + validations * c.seconds_per_validation
                 for c in pretrainings.values())
    per_step += sum(c.seconds_per_step for c in pretrainings.values())
    return fixed, per_step


def size(cfg: DictConfig, costs: dict[str, ArmCost], available: float) -> Sizing:
    """The longest schedule (matched steps) that ``schedule.min_seeds`` seeds and the delivered
    model fit into ``available`` seconds, within the schedule's bounds; leftover budget buys
    seeds up to ``schedule.max_seeds``.

    Raises:
        ConfigError: Even ``schedule.min_steps`` does not fit; the message gives the budget that
            would.
    """
    arms = [str(arm.name) for arm in cfg.arms]
    validations = int(cfg.schedule.validations)
    fixed, per_step = _linear_cost(costs, arms, len(cfg.budget.fractions), validations)
    # The delivered model: the dearest arm, once, at one fraction.
    single = [_linear_cost(costs, [arm], 1, validations) for arm in arms]
    deliver_fixed = max(s[0] for s in single) if cfg.deliver.enabled else 0.0
    deliver_step = max(s[1] for s in single) if cfg.deliver.enabled else 0.0
    schedule = cfg.schedule

    def total(seeds: int, steps: int) -> float:
        return seeds * (fixed + per_step * steps) + deliver_fixed + deliver_step * steps

    seeds = int(schedule.min_seeds)
    steps = math.floor((SAFETY * available - seeds * fixed - deliver_fixed)
                       / (seeds * per_step + deliver_step))
    if steps < schedule.min_steps:
        needed = total(seeds, int(schedule.min_steps)) / SAFETY
        raise ConfigError(
            f"the budget is too small: {seeds} seeds of {len(arms)} arms at the shortest "
            f"schedule ({schedule.min_steps} steps, schedule.min_steps) need about "
            f"{math.ceil(needed / 60)} min on this machine after the pilot (which measured each "
            f"arm's seconds per step); give budget.minutes={math.ceil(needed / 60)} or more, "
            "or fewer arms or budget.fractions")
    steps = min(steps, int(schedule.max_steps))
    while seeds < schedule.max_seeds and total(seeds + 1, steps) <= SAFETY * available:
        seeds += 1
    return Sizing(steps, seeds, total(seeds, steps))
