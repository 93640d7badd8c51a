"""A whole study: look at the data, pilot, plan, declare, run (resumably), recommend, deliver.

Files under ``<out>/`` (besides the sweep's own, :mod:`fkt_plugin.sweep.plan`)::

    plan.json         the data's facts, the pilot's costs, the schedule and seeds
    pilot/            the pilot's runs (a seed outside the study)
    compare.yaml      the planned sweep as an fkt-compare recipe
    report.md, report.html   the answer
    model/            the delivered model: backbone.pt, backbone.safetensors, its run
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig

from fkt_plugin.config import mapping_copy, plain_dict
from fkt_plugin.errors import ConfigError, FKTError
from fkt_plugin.run_dir import RunDirectory
from fkt_plugin.study.decide import Recommendation, recommend
from fkt_plugin.study.deliver import deliver
from fkt_plugin.study.look import (
    backbone_overrides,
    check_labels,
    choose_family,
    data_overrides,
    family_folder,
    look,
)
from fkt_plugin.study.pilot import run_pilot, save_costs
from fkt_plugin.study.plan import (
    StudyPlan,
    budget_seconds,
    budget_text,
    compare_recipe,
    finetune_epochs,
    machine,
    relative_to,
    size,
)
from fkt_plugin.study.report import write_study_report
from fkt_plugin.sweep import Sweep, draw, run_sweep, start_helpers, write_report
from fkt_plugin.sweep.declaration import declaration_lines, declare
from fkt_plugin.sweep.launch import SweepSpec, launch
from fkt_plugin.sweep.plan import print_now, slug


def default_out(cfg: DictConfig) -> Path:
    """``studies/<dataset>[-<train_path's folder name>]``."""
    name = str(cfg.data.dataset)
    if cfg.data.train_path:
        name += f"-{Path(str(cfg.data.train_path)).resolve().name}"
    return Path("studies") / slug(name)


def _plan(cfg: DictConfig, out: Path, template_dir: Path,
          log: Callable[[str], None]) -> StudyPlan:
    """Looks at the data, runs the pilot and sizes the study (the plan is saved)."""
    started = time.time()
    facts = look(cfg)
    log(facts.describe())
    fractions = [float(f) for f in cfg.budget.fractions]
    check_labels(facts, fractions, int(cfg.schedule.min_labels_per_class))
    family = choose_family(cfg, facts)
    folder = family_folder(cfg, family, template_dir)
    backbone, backbone_settings = backbone_overrides(cfg, family)
    data = data_overrides(cfg)
    overrides = [*data, *map(str, family.overrides), *backbone_settings, *map(str, cfg.overrides)]
    log(f"recipes: the {family.name} family ({folder.name}), {backbone} backbone "
        f"({' '.join(backbone_settings) or 'as the recipes have it'})")
    pilot_out = out / "pilot"
    shutil.rmtree(pilot_out, ignore_errors=True)  # a pilot cut short is timed again, whole
    largest = max(fractions)
    pilot = Sweep(mapping_copy(compare_recipe(
        cfg, recipes=str(folder), overrides=overrides, out=str(pilot_out), fractions=[largest],
        seeds=[int(cfg.pilot.seed)], steps=int(cfg.pilot.steps),
        epochs={str(largest): 1}, validations=2)), base_dir=out)
    log(f"pilot: every arm {cfg.pilot.steps} steps on seed {cfg.pilot.seed} (outside the "
        "study), timed")
    costs = run_pilot(pilot, int(cfg.pilot.steps))
    spent = time.time() - started
    save_costs(pilot_out / "costs.json", costs, spent)
    total = budget_seconds(cfg)
    sizing = size(cfg, costs, total - spent)
    reference = pilot.run_cfg(pilot.jobs[0])
    epochs = {str(f): finetune_epochs(facts, f, sizing.steps, int(reference.optimizer.batch_size),
                                      float(reference.data.val_fraction)) for f in fractions}
    plan = StudyPlan(
        facts=facts.to_dict(), machine=machine(), data=data, family=str(family.name),
        recipes=relative_to(folder, out), backbone=f"{reference.backbone.name} ({backbone})",
        overrides=overrides, fractions=fractions, steps=sizing.steps,
        seeds=list(range(sizing.seeds)), finetune_epochs=epochs,
        budget=plain_dict(cfg.budget), budget_seconds=total, pilot_seconds=spent,
        estimate_seconds=sizing.estimate_seconds,
        costs={name: cost.to_dict() for name, cost in costs.items()})
    plan.save(out / "plan.json")
    return plan


def _resumed(cfg: DictConfig, out: Path) -> StudyPlan:
    """The saved plan, when the command still asks for the same data and budget."""
    plan = StudyPlan.load(out / "plan.json")
    asked = {"budget": plain_dict(cfg.budget), "data": data_overrides(cfg)}
    planned = {"budget": plan.budget, "data": plan.data}
    if json.loads(json.dumps(asked)) != json.loads(json.dumps(planned)):
        raise ConfigError(f"{out} holds a study planned for {planned}, not {asked}: give "
                          "another out= for a new study, or the same settings to resume it")
    return plan


def _seconds(sweep: Sweep, fraction: float) -> dict[str, float]:
    """Each arm's mean measured seconds per seed at a fraction: its training run (a shared
    pre-training counted whole) and its fine-tuning run."""
    seconds: dict[str, list[float]] = {}
    for job in sweep.jobs:
        if job.fraction != fraction or not sweep.finished(job):
            continue
        spent = sweep.folder(job).read_results().fit_seconds or 0.0
        tuned = sweep.classifier_run(job)
        if tuned is not None and tuned[0] != sweep.run_dir(job):
            spent += RunDirectory(tuned[0]).read_results().fit_seconds or 0.0
        seconds.setdefault(str(job.arm.name), []).append(spent)
    return {arm: statistics.mean(values) for arm, values in seconds.items()}


def run_study(cfg: DictConfig, template_dir: Path, command: str,
              log: Callable[[str], None] = print_now) -> Path:
    """Runs (or resumes) a validated study; returns its report.

    Args:
        cfg: A validated study cfg (:func:`fkt_plugin.args.study.validate_study_cfg`).
        template_dir: The template's folder (family recipe folders are relative to it).
        command: The command line, quoted in the sweep's report.
    """
    out = Path(str(cfg.out)) if cfg.out else default_out(cfg)
    if (out / "plan.json").is_file():
        plan = _resumed(cfg, out)
        log(f"resuming the study in {out} (plan.json: {plan.steps} steps, seeds {plan.seeds})")
    else:
        plan = _plan(cfg, out, template_dir, log)
    arms = [str(arm.name) for arm in cfg.arms]
    log(f"plan: {len(arms)} arms ({', '.join(arms)}), {plan.steps} steps each, seeds "
        f"{plan.seeds}, fractions {plan.fractions}: about "
        f"{budget_text(plan.estimate_seconds)} of the {budget_text(plan.budget_seconds)} budget "
        f"(the pilot took {budget_text(plan.pilot_seconds)})")
    recipe = compare_recipe(cfg, recipes=plan.recipes, overrides=plan.overrides, out=str(out),
                            fractions=plan.fractions, seeds=plan.seeds, steps=plan.steps,
                            epochs=plan.finetune_epochs)
    written = {k: v for k, v in recipe.items() if k not in ("launcher", "processes")}
    (out / "compare.yaml").write_text(yaml.safe_dump(written, sort_keys=False,
                                                      allow_unicode=True))
    sweep = Sweep(mapping_copy(recipe), base_dir=out)
    declared = declare(sweep, cfg.amend)
    log(f"declared {declared['declared']} in {out / 'declaration.json'} (design sha "
        f"{declared['sha256'][:12]})")
    rows = _run(sweep, cfg, recipe, out)
    if rows is None:
        log("submitted; when the jobs have finished, the same command writes the report")
        return out / "report.md"
    write_report(sweep.cfg, out, rows, command=command)
    draw(sweep, rows, embedding=False)
    answers: list[Recommendation] = [
        answer for f in plan.fractions
        if (answer := recommend(rows, arms, f, _seconds(sweep, f))) is not None]
    delivered: list[str] = []
    largest = next((a for a in answers if a.fraction == max(plan.fractions)), None)
    if largest is not None and cfg.deliver.enabled and len(rows) == len(sweep.jobs):
        log(f"delivering {largest.chosen}: retrained on the labels of "
            f"{100 * largest.fraction:g}%, exported under {out / 'model'}")
        delivered = deliver(compare_recipe(
            cfg, recipes=plan.recipes, overrides=plan.overrides, out=str(out / "model"),
            fractions=[largest.fraction], seeds=plan.seeds[:1], steps=plan.steps,
            epochs=plan.finetune_epochs,
            val_labels="budget" if cfg.deliver.validation else "none",
            arms=[largest.chosen]) | {"paired": []}, out)
    report, page = write_study_report(out, plan, answers, rows, arms,
                                      declaration_lines(out), delivered)
    for answer in answers:
        log(answer.sentence())
    log(f"wrote {report} and {page}")
    return report


def _run(sweep: Sweep, cfg: DictConfig, recipe: dict[str, Any],
         out: Path) -> list[dict[str, Any]] | None:
    """The sweep's rows once every job ran here (None: submitted to a cluster)."""
    if cfg.launcher.name == "slurm":
        spec = SweepSpec({k: v for k, v in recipe.items() if k not in ("defaults", "hydra")},
                         str(out.resolve()), str(Path.cwd()))
        if not launch(sweep, spec):
            return None
        return run_sweep(sweep, train_missing=False)
    helpers = start_helpers(out / "logs", int(cfg.processes), args=[
        "--config-path", str(out.resolve()), "--config-name", "compare"])
    try:
        rows = run_sweep(sweep)
    except BaseException:
        for helper, _ in helpers:
            helper.terminate()
        raise
    failed = [log for helper, log in helpers if helper.wait() != 0]
    if failed:
        raise FKTError(f"a process of this study failed; its output: {', '.join(map(str, failed))}")
    return rows
