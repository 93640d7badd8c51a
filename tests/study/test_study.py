"""fkt-study end to end on an image folder with a planted signal: planned within the budget,
declared, interrupted and resumed, answered by a report whose recommendation follows from its
own results.csv, delivered as an exported model; a label budget too small is refused."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from scipy import stats

import fkt_plugin.cli.study
import fkt_plugin.sweep.execute
from fkt_plugin.backbones import build_backbone
from tests.helpers import run_tool

COLOURS = [(220, 40, 40), (40, 200, 40), (40, 40, 220)]
ARMS = ('arms=[{name: fkt_joint, recipe: fkt_joint}, {name: supervised, recipe: supervised}, '
        '{name: "simclr → linear", recipe: simclr, protocol: linear}]')
TINY = ('overrides=["scheduler.warmup_epochs=0", "optimizer.batch_size=32", '
        '"backbone.kwargs.width=4", "accelerator=cpu"]')


def planted_folder(root: Path, per_class: list[int], size: int = 32) -> Path:
    """<root>/train/<class>/<i>.png: noise with a square of the class's colour somewhere;
    <root>/unlabelled: images with a small square of some colour."""
    rng = np.random.default_rng(0)
    for c, count in enumerate(per_class):
        folder = root / "train" / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(count):
            image = rng.integers(0, 120, (size, size, 3), dtype=np.uint8)
            x, y = rng.integers(0, size // 2, 2)
            image[y:y + size // 3, x:x + size // 3] = COLOURS[c % len(COLOURS)]
            Image.fromarray(image).save(folder / f"{i}.png")
    unlabelled = root / "unlabelled"
    unlabelled.mkdir()
    for i in range(30):
        image = rng.integers(0, 120, (size, size, 3), dtype=np.uint8)
        image[2:10, 2:10] = COLOURS[i % len(COLOURS)]
        Image.fromarray(image).save(unlabelled / f"{i}.png")
    return root


def study_args(root: Path, *extra: str) -> list[str]:
    return ["data.dataset=folder", f"data.train_path={root / 'train'}",
            f"data.unlabelled_path={root / 'unlabelled'}", "data.image_size=32",
            f"data.cache_dir={root / 'cache'}", "out=study", ARMS, TINY, "pilot.steps=6",
            "schedule.min_steps=10", "schedule.max_steps=30", "schedule.max_seeds=3",
            "schedule.validations=4", *extra]


def recommendation_from_csv(path: Path) -> tuple[str, list[str]]:
    """The best arm and the arms tied with it, recomputed from results.csv with scipy."""
    scores: dict[str, dict[int, float]] = {}
    with path.open() as handle:
        for row in csv.DictReader(handle):
            if row.get("seed"):
                scores.setdefault(row["arm"], {})[int(row["seed"])] = 100 * float(row["acc1"])
    best = max(scores, key=lambda arm: np.mean(list(scores[arm].values())))
    seeds = sorted(scores[best])
    tied = [best] + [arm for arm in scores if arm != best and stats.ttest_rel(
        [scores[best][s] for s in seeds], [scores[arm][s] for s in seeds]
    ).confidence_interval(0.95).low <= 0]
    return best, tied


def test_a_study_plans_declares_resumes_recommends_and_delivers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = planted_folder(tmp_path / "images", [40, 40, 40])
    # A budget above what the capped plan needs (schedule.max_steps=30, 3 seeds: about a minute
    # on two free cores), so that a slow or busy machine still plans the same study.
    args = study_args(root, "budget.minutes=3")
    # Interrupted at the study's third job (the pilot's jobs are its own).
    original, calls = fkt_plugin.sweep.execute.run_job, []

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(*a, **k)

    monkeypatch.setattr(fkt_plugin.sweep.execute, "run_job", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_tool(fkt_plugin.cli.study.main, *args, cwd=tmp_path)
    study = tmp_path / "study"
    plan = json.loads((study / "plan.json").read_text())
    declared = json.loads((study / "declaration.json").read_text())
    assert 10 <= plan["steps"] <= 30 and len(plan["seeds"]) == 3
    assert plan["estimate_seconds"] <= 3 * 60 - plan["pilot_seconds"]
    assert declared["runs_finished_when_declared"] == 0
    pilot_timed = (study / "pilot" / "costs.json").stat().st_mtime

    monkeypatch.setattr(fkt_plugin.sweep.execute, "run_job", original)
    done = run_tool(fkt_plugin.cli.study.main, *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "resuming the study in study" in done.stdout
    assert len(re.findall(r": finished earlier, read back", done.stdout)) == 2
    assert (study / "pilot" / "costs.json").stat().st_mtime == pilot_timed
    # Every run of the study was made after its declaration, under its design.
    for results in (study / "runs").glob("*/results.json"):
        if "finetune" not in results.parent.name:
            assert json.loads(results.read_text())["declaration"] == declared["sha256"]

    report = (study / "report.md").read_text()
    best, tied = recommendation_from_csv(study / "results.csv")
    first = report.split("**Recommendation.** ")[1].splitlines()[0]
    if tied == [best]:
        assert f", `{best}` gives the best classifier" in first
    else:
        assert f"from `{best}` (" in first
        chosen = re.search(r"use `(.+?)`\.$", first).group(1)
        assert chosen in tied
    for heading in ("### Test accuracy (%)", "### Paired differences against the best mean",
                    "### Labels per run", "### Runs still rising", "### Cost per arm"):
        assert heading in report
    assert "intervals are read here, each on its own: uncorrected for multiplicity" in report

    # The delivered model: the chosen arm retrained with no validation split, exported.
    model = study / "model"
    state = load_file(model / "backbone.safetensors")
    assert torch.equal(state[next(iter(state))],
                       torch.load(model / "backbone.pt")[next(iter(state))])
    net, _ = build_backbone("small_cnn", in_channels=3, width=4)
    net.load_state_dict(state)
    (delivered,) = [json.loads(p.read_text()) for p in (model / "runs").glob("*/results.json")
                    if "finetune" not in p.parent.name and json.loads(p.read_text())["labels"]]
    assert delivered["labels"]["val"] == 0 and delivered["selection"] == "last"
    assert "### The delivered model" in report and "backbone.safetensors" in report

    # The page reads offline: its pictures are inline; Chromium renders its table and images.
    page = (study / "report.html").read_text()
    assert "<table>" in page and 'src="data:image/png;base64,' in page
    assert not re.search(r'src="(?!data:)', page)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (make test installs it as root)")
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                          "--dump-dom", (study / "report.html").as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert "Recommendation." in dom and dom.count("<tr>") >= 4
    assert len(re.findall(r'<img[^>]+src="data:image/png;base64,', dom)) >= 2


def test_too_few_labels_for_a_budget_validation_split_are_refused(tmp_path: Path) -> None:
    # 7 images of class1, one of them held out as its test image (data.holdout_fraction 0.2).
    root = planted_folder(tmp_path / "images", [40, 7, 40])
    done = run_tool(fkt_plugin.cli.study.main, *study_args(root, "budget.minutes=1"),
                    cwd=tmp_path)
    assert done.returncode == 2
    assert ("class 'class1' keeps 6 labelled image(s) at budget.fractions 1 (every one it has): "
            "a validation split inside the label budget needs at least 10 per class") \
        in done.stderr
    assert not (tmp_path / "study" / "pilot").exists()
    done = run_tool(fkt_plugin.cli.study.main,
                    *study_args(planted_folder(tmp_path / "more", [40, 40, 40]),
                                "budget.minutes=1", "budget.fractions=[1.0,0.2]"), cwd=tmp_path)
    assert done.returncode == 2
    assert "at budget.fractions 0.2 (20% of its 32)" in done.stderr
    assert "this fraction needs 48 labelled images of 'class0'" in done.stderr
