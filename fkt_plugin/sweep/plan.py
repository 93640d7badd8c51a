"""A sweep's plan: its jobs (arm × label fraction × seed), each job's training run and its cfg,
the run names, and where every file of the sweep lives. Pure: nothing is trained or read here
but the recipes.

Files under ``<out>/``::

    runs/                   one run folder per training run (:mod:`fkt_plugin.run_dir`)
    clusters/               cluster-transfer students' pseudo-labels
    locks/                  the lock files of claimed work (held only while a process works)
    logs/                   the output of processes 2..N of ``processes=N``
    results.csv, results.md, *.png   the report (:mod:`fkt_plugin.sweep.report`)
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from fkt_plugin.args.compare import seeds_for, validate_compare_cfg
from fkt_plugin.args.run import validate_run_cfg
from fkt_plugin.config import resolve_per_fraction
from fkt_plugin.errors import ConfigError, MissingPathError
from fkt_plugin.evaluation.protocol_registry import PROTOCOLS
from fkt_plugin.methods import METHODS
from fkt_plugin.recipes import apply_value_overrides, compose_recipe
from fkt_plugin.run_dir import RunDirectory, fraction_tag


def slug(text: str) -> str:
    """A file-name-safe, lower-case form of an arm or recipe name."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-").lower()


def print_now(line: str) -> None:
    print(line, flush=True)


@dataclass(frozen=True)
class Job:
    """One cell of the sweep: an arm at a label fraction and a seed."""

    arm: DictConfig
    fraction: float
    seed: int


@dataclass(frozen=True)
class RunPlan:
    """A job's training run: its name and the overrides that make its cfg from the arm's."""

    name: str
    overrides: list[str]


class Sweep:
    """The runs of a validated compare cfg and where each one's results live.

    Args:
        cfg: A compare cfg (:data:`fkt_plugin.args.compare.COMPARE_DEFAULTS`), validated here.
        base_dir: Folder that relative ``recipes`` and ``out`` paths start from.
        log: Where notices go.
    """

    def __init__(self, cfg: DictConfig, base_dir: str | Path = ".",
                 log: Callable[[str], None] = print_now) -> None:
        self.cfg = validate_compare_cfg(cfg)
        self.log = log
        base = Path(base_dir)
        recipes = Path(self.cfg.recipes)
        self.recipes = recipes if recipes.is_absolute() else base / recipes
        self.out = Path(self.cfg.out)
        if not self.recipes.is_dir():
            raise MissingPathError(f"recipes={self.recipes} is not a folder of training recipes")
        self._run_cfgs: dict[tuple[str, float, int], DictConfig] = {}
        self._arm_cfgs: dict[str, DictConfig] = {}
        self._plans: dict[tuple[str, float, int], RunPlan] = {}
        first_seeds = dict.fromkeys(s for f in self.cfg.fractions
                                    for s in seeds_for(self.cfg, float(f)))
        self.jobs = [Job(arm, float(f), s) for s in first_seeds
                     for f in self.cfg.fractions for arm in self.cfg.arms
                     if (arm.fractions is None or f in arm.fractions)
                     and s in seeds_for(self.cfg, float(f))]
        self.first_seed = next(iter(first_seeds))
        for arm in self.cfg.arms:
            self.recipe_file(arm)
        # Composing every run's cfg up front catches a bad recipe or override before hours of
        # training, not in the middle; a summary trains nothing and composes nothing.
        if not self.cfg.summary_only:
            for job in self.jobs:
                validate_run_cfg(self.run_cfg(job))

    def _compose(self, arm: DictConfig, overrides: list[str]) -> DictConfig:
        """The arm's recipe with the sweep's and the arm's overrides, then a job's
        ``key=value`` overrides."""
        return apply_value_overrides(self._arm_base(arm), overrides)

    def recipe_file(self, arm: DictConfig) -> Path:
        """The arm's recipe file.

        Raises:
            ConfigError: No such recipe in the sweep's folder (the message lists them).
        """
        recipe = str(arm.recipe).removesuffix(".yaml")
        path = self.recipes / f"{recipe}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in self.recipes.glob("*.yaml"))
            raise ConfigError(f"arm {arm.name!r}: no recipe {recipe!r} in {self.recipes}; "
                              f"known: {', '.join(known)}")
        return path

    def _arm_base(self, arm: DictConfig) -> DictConfig:
        """The arm's recipe with the sweep's and the arm's overrides, composed once per arm
        (shared: callers copy before changing it)."""
        name = str(arm.name)
        if name not in self._arm_cfgs:
            self._arm_cfgs[name] = compose_recipe(self.recipe_file(arm),
                                                  [*self.cfg.overrides, *arm.overrides])
        return self._arm_cfgs[name]

    def _method(self, arm: DictConfig) -> str:
        """The method an arm trains: the last ``method=`` of the sweep's and the arm's
        overrides, else the recipe file's own ``method`` (read without composing it, so that a
        summary composes nothing), else the composed recipe's."""
        overrides = OverridesParser.create().parse_overrides([*self.cfg.overrides,
                                                              *arm.overrides])
        chosen = [o.value() for o in overrides if o.key_or_group == "method" and not o.is_delete()]
        if chosen:
            return str(chosen[-1])
        recipe = OmegaConf.load(self.recipe_file(arm))
        declared = recipe.get("method") if isinstance(recipe, DictConfig) else None
        return str(declared if declared is not None else self._arm_base(arm).method)

    def run_cfg(self, job: Job) -> DictConfig:
        """The training run behind a job: the arm's own run, or its shared pre-training."""
        key = (str(job.arm.name), job.fraction, job.seed)
        if key not in self._run_cfgs:
            self._run_cfgs[key] = self._compose(job.arm, self._plan(job).overrides)
        return self._run_cfgs[key].copy()

    def run_name(self, job: Job) -> str:
        """The name of a job's training run (its folder under ``<out>/runs``)."""
        return self._plan(job).name

    def _plan(self, job: Job) -> RunPlan:
        key = (str(job.arm.name), job.fraction, job.seed)
        if key not in self._plans:
            self._plans[key] = self._make_plan(job)
        return self._plans[key]

    def _make_plan(self, job: Job) -> RunPlan:
        arm = job.arm
        if arm.steps is None:
            epochs = resolve_per_fraction(arm.epochs, job.fraction, f"arm {arm.name!r} epochs")
            length, length_tag = [f"max_epochs={epochs}"], f"e{epochs}"
        else:
            steps = resolve_per_fraction(arm.steps, job.fraction, f"arm {arm.name!r} steps")
            length, length_tag = [f"++max_steps={steps}"], f"s{steps}"
        # A student learns from its teacher's cluster ids only: no real label, like SSL.
        label_free = arm.protocol is not None and (
            arm.teacher is not None or not METHODS[self._method(arm)].supervised_grad)
        fraction = 1.0 if label_free else job.fraction
        extra: list[str] = []
        if arm.protocol is None:
            name = f"{slug(arm.name)}-{fraction_tag(fraction)}-seed{job.seed}"
        else:
            # Shared by every arm and fraction that pre-trains the same way.
            key = json.dumps([list(self.cfg.overrides), list(arm.overrides)])
            digest = hashlib.sha1(key.encode()).hexdigest()[:6]
            tag = "" if label_free else f"-{fraction_tag(fraction)}"
            name = f"{slug(str(arm.recipe))}-{length_tag}{tag}-seed{job.seed}-{digest}"
        # Paths as given (relative to the working directory, like out): a committed sweep
        # resumes from another checkout.
        if arm.teacher is not None and arm.k is None:
            teacher_dir = self.run_dir(self.teacher_job(job))
            name = f"{name}-student-of-{teacher_dir.name}"
            extra.append(f"method_kwargs.teacher.run_dir={teacher_dir}")
        elif arm.teacher is not None:
            labels = self.pseudo_label_file(job)
            name = f"{name}-student-of-{labels.stem}"
            extra.append(f"++data.pseudo_labels={labels}")
        for key, value in (("data.val_labels", self.cfg.val_labels),
                           ("selection", self.cfg.selection)):
            if value is not None:
                extra.append(f"++{key}={value}")
        return RunPlan(name, [
            f"data.label_fraction={fraction}", f"seed={job.seed}", f"data.split_seed={job.seed}",
            *length, f"checkpoint.dir={self.out / 'runs'}", f"++name={name}", *extra])

    def teacher_job(self, job: Job) -> Job:
        """The job whose run is a student job's teacher (same seed and fraction)."""
        teacher = next(arm for arm in self.cfg.arms if arm.name == job.arm.teacher)
        return Job(teacher, job.fraction, job.seed)

    def pseudo_label_file(self, job: Job) -> Path:
        """Where a student job's cluster ids are: one file per teacher run, k and settings."""
        settings = json.dumps({str(k): v for k, v in job.arm.cluster.items()}, sort_keys=True)
        digest = hashlib.sha1(settings.encode()).hexdigest()[:6]
        teacher = self.run_name(self.teacher_job(job))
        return self.out / "clusters" / f"{teacher}-k{job.arm.k}-{digest}.npz"

    def run_dir(self, job: Job) -> Path:
        return self.out / "runs" / self.run_name(job)

    def folder(self, job: Job) -> RunDirectory:
        """The run folder of a job's training run."""
        return RunDirectory(self.run_dir(job))

    def eval_file(self, job: Job) -> Path:
        """Where a job's test metrics are read from."""
        if job.arm.protocol is None:
            return self.folder(job).results_file
        return self.folder(job).eval_file(job.arm.protocol, job.fraction)

    def finished(self, job: Job) -> bool:
        return self.eval_file(job).is_file()

    def check_read_back(self, job: Job) -> None:
        """Refuses a finished job whose run was made under another ``selection`` or
        ``val_labels`` than the sweep asks for (these are not in the run names, so that sweeps
        from before they existed resume; runs that do not record them are accepted).

        Raises:
            ConfigError: The recorded setting differs.
        """
        folder = self.folder(job)
        if not folder.results_file.is_file():
            return
        results = folder.read_results()
        recorded = {"selection": results.selection,
                    "val_labels": (results.labels or {}).get("val_labels")}
        for key, was in recorded.items():
            wanted = self.cfg[key]
            if wanted is not None and was is not None and was != wanted:
                raise ConfigError(
                    f"{folder.name} under {self.out} was run with {key}={was}, "
                    f"this sweep asks for {key}={wanted}; give the sweep another out= (runs of "
                    f"different {key} are not mixed in one table)")

    def lock_file(self, kind: str, name: str) -> Path:
        """The lock file by which one process claims a piece of the sweep's work."""
        return self.out / "locks" / f"{kind}-{name}.lock"

    def classifier_run(self, job: Job) -> tuple[Path, str] | None:
        """The run directory and checkpoint of the model a job's test metrics come from
        (None for frozen-feature protocols: their backbone is the pre-training's)."""
        if job.arm.protocol is None:
            return self.run_dir(job), "best.ckpt"
        if not PROTOCOLS[job.arm.protocol].frozen:  # fine-tuning: a run of its own
            tuned = json.loads(self.eval_file(job).read_text())["finetune_run"]
            return self.out / "runs" / tuned, "best.ckpt"
        return None


