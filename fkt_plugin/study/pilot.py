"""A study's pilot: every arm trained for a few optimiser steps on a seed outside the study, each
step timed, and each evaluation timed, on the machine that will run the study. What the plan
sizes the schedule and the seeds from."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from fkt_plugin.run_dir import RunDirectory
from fkt_plugin.runner import train
from fkt_plugin.sweep import Sweep, run_job

WARM_UP_STEPS = 2
"""Steps left out of the timing: the first ones allocate memory and warm caches."""


class StepTimer(Callback):
    """Times a run's optimiser steps (forward, backward, update, views, and the loader between
    them) apart from its validations (each with the checkpoint written after it)."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.validations: list[tuple[float, float]] = []
        self._validating: float | None = None

    def on_train_batch_start(self, trainer: pl.Trainer, module: pl.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        now = time.perf_counter()
        if self._validating is not None:
            self.validations.append((self._validating, now))
            self._validating = None
        self.starts.append(now)

    def on_validation_epoch_start(self, trainer: pl.Trainer,
                                  module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._validating = time.perf_counter()

    def seconds_per_step(self) -> float:
        """The mean step time after the warm-up steps, validations left out."""
        timed = self.starts[WARM_UP_STEPS:]
        if len(timed) < 2:
            raise ValueError("too few timed steps")
        inside = sum(end - begin for begin, end in self.validations if begin >= timed[0])
        return (timed[-1] - timed[0] - inside) / (len(timed) - 1)

    def seconds_per_validation(self) -> float:
        """The mean time of a validation and its checkpoint (0: none between two steps)."""
        if not self.validations:
            return 0.0
        return sum(end - begin for begin, end in self.validations) / len(self.validations)


@dataclass(frozen=True)
class ArmCost:
    """What one arm costs, from the pilot: its training run's seconds per optimiser step and
    the fixed seconds of a run (loading, validation, testing); for arms scored by a protocol,
    the evaluation's fixed seconds and, for fine-tuning, its seconds per step (a validation
    of a fine-tuning is taken to cost what one of the arm's training run does)."""

    run: str
    seconds_per_step: float
    fixed_seconds: float
    seconds_per_validation: float = 0.0
    eval_fixed_seconds: float = 0.0
    eval_seconds_per_step: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_pilot(sweep: Sweep, steps: int) -> dict[str, ArmCost]:
    """Trains and evaluates every arm of a one-seed, one-fraction ``sweep`` of ``steps`` steps
    (validating at half and at the end), timing each; a pre-training shared by several arms is
    trained (and timed) once."""
    timed: dict[str, tuple[float, float, float]] = {}
    costs = {}
    for job in sweep.jobs:
        folder = sweep.folder(job)
        if folder.name not in timed:
            timer = StepTimer()
            started = time.perf_counter()
            train(sweep.run_cfg(job), callbacks=[timer])
            wall = time.perf_counter() - started
            per_step, per_validation = timer.seconds_per_step(), timer.seconds_per_validation()
            fixed = wall - steps * per_step - len(timer.validations) * per_validation
            timed[folder.name] = (per_step, max(0.0, fixed), per_validation)
        per_step, fixed, per_validation = timed[folder.name]
        if job.arm.protocol is None:
            costs[str(job.arm.name)] = ArmCost(folder.name, per_step, fixed, per_validation)
            continue
        started = time.perf_counter()
        evaluation = run_job(sweep, job)
        wall = time.perf_counter() - started
        eval_per_step = 0.0
        if "finetune_run" in evaluation:
            tuned = RunDirectory(sweep.out / "runs" / evaluation["finetune_run"]).read_results()
            eval_per_step = (tuned.fit_seconds or 0.0) / max(1, tuned.optimizer_steps or 1)
            wall -= eval_per_step * (tuned.optimizer_steps or 0)
        costs[str(job.arm.name)] = ArmCost(folder.name, per_step, fixed, per_validation,
                                           max(0.0, wall), eval_per_step)
    return costs


def save_costs(path: Path, costs: dict[str, ArmCost], seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"seconds": round(seconds, 1),
                                "arms": {k: v.to_dict() for k, v in costs.items()}},
                               indent=2, ensure_ascii=False) + "\n")


def load_costs(path: Path) -> tuple[dict[str, ArmCost], float]:
    saved = json.loads(path.read_text())
    return ({name: ArmCost(**cost) for name, cost in saved["arms"].items()},
            float(saved["seconds"]))
