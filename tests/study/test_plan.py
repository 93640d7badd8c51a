"""The study template: every recipe family composes with every arm on both backbones; the
commands the README and --help show compose as typed; the plan's sizing stays inside the
budget and refuses one too small with the minutes it would need."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

import fkt_plugin.cli.study
from fkt_plugin.args.schemas import register_schemas
from fkt_plugin.args.study import validate_study_cfg
from fkt_plugin.config import mapping_copy
from fkt_plugin.errors import ConfigError
from fkt_plugin.study.look import family_folder
from fkt_plugin.study.pilot import ArmCost
from fkt_plugin.study.plan import SAFETY, compare_recipe, size
from fkt_plugin.sweep import Sweep
from tests.helpers import REPO, run_tool

TEMPLATES = REPO / "recipes" / "study"


def template(*overrides: str):
    register_schemas()
    with initialize_config_dir(config_dir=str(TEMPLATES), version_base="1.3"):
        cfg = compose(config_name="default",
                      overrides=["data.dataset=folder", "budget.minutes=60", *overrides])
    return validate_study_cfg(cfg)


@pytest.mark.parametrize("choice", ["cpu", "gpu"])
def test_every_family_composes_with_every_arm(choice: str, tmp_path: Path) -> None:
    cfg = template()
    for family in cfg.families:
        folder = family_folder(cfg, family, TEMPLATES)
        recipe = compare_recipe(
            cfg, recipes=str(folder), out=str(tmp_path / "out"), fractions=[1.0], seeds=[0],
            steps=100, epochs={"1.0": 3},
            overrides=[*family.overrides, *family[choice], *cfg.overrides])
        sweep = Sweep(mapping_copy(recipe))  # composes and validates every run
        expected = "small_cnn" if choice == "cpu" else "resnet18"
        names = {sweep.run_cfg(job).backbone.name for job in sweep.jobs}
        assert names == {expected}, family.name
        assert {sweep.run_cfg(job).max_steps for job in sweep.jobs} == {100}


def test_the_documented_commands_compose_as_typed() -> None:
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"^\s*(fkt-study [^\n`]+)$", readme + fkt_plugin.cli.study.HELP,
                          re.MULTILINE)
    assert len(commands) >= 3
    for command in commands:
        done = run_tool(fkt_plugin.cli.study.main, *command.split()[1:], "--cfg", "job",
                        cwd=REPO)
        assert done.returncode == 0, (command, done.stderr)
        assert "budget:" in done.stdout


def costs(per_step: float, fixed: float) -> dict[str, ArmCost]:
    cfg = template()
    out = {}
    for arm in cfg.arms:
        if arm.protocol is None:
            out[arm.name] = ArmCost(f"run-{arm.name}", per_step, fixed, 0.1)
        else:  # SimCLR's two arms share one pre-training
            run = f"pre-{arm.recipe}"
            tuned = per_step / 4 if arm.protocol == "finetune" else 0.0
            out[arm.name] = ArmCost(run, per_step, fixed, 0.1, 2.0, tuned)
    return out


def seconds_of(per_step: float, fixed: float, steps: int, seeds: int) -> float:
    """The cost of the template's six arms, counted by hand: three trained runs, two
    pre-trainings (SimCLR shared), two fine-tunings and a linear probe per seed, sixteen
    validations per run; the delivered model the dearest arm (a pre-training and its
    fine-tuning)."""
    run = fixed + 16 * 0.1 + per_step * steps
    tuned = 2.0 + 16 * 0.1 + per_step / 4 * steps
    per_seed = 3 * run + 2 * run + 2 * tuned + 2.0
    return seeds * per_seed + run + tuned


def test_the_plan_fills_the_budget_and_no_more() -> None:
    cfg = template("budget.minutes=60")
    sizing = size(cfg, costs(1.0, 5.0), 3600.0)
    assert sizing.seeds == 3 and 50 <= sizing.steps < 3000
    assert sizing.estimate_seconds == pytest.approx(seconds_of(1.0, 5.0, sizing.steps, 3))
    assert sizing.estimate_seconds <= SAFETY * 3600
    assert seconds_of(1.0, 5.0, sizing.steps + 1, 3) > SAFETY * 3600
    # A cheap machine reaches max_steps, and the rest of the budget buys seeds.
    sizing = size(cfg, costs(0.01, 1.0), 3600.0)
    assert sizing.steps == 3000 and sizing.seeds == 5


def test_a_budget_too_small_is_refused_with_what_it_needs() -> None:
    cfg = template("budget.minutes=5")
    with pytest.raises(ConfigError) as refused:
        size(cfg, costs(1.0, 5.0), 300.0)
    needed = seconds_of(1.0, 5.0, 50, 3) / SAFETY
    assert f"give budget.minutes={-(-needed // 60):.0f} or more" in str(refused.value)
