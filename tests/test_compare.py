"""fkt-compare: recipe validation, resuming a sweep, the report; fkt-eval on a finished run;
fine-tuning initialised from a checkpoint."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import fkt_plugin.cli.compare
import fkt_plugin.cli.eval
import fkt_plugin.cli.train
import fkt_plugin.evaluation.protocols
import fkt_plugin.runner
import fkt_plugin.sweep.execute
import fkt_plugin.sweep.plan
from fkt_plugin.errors import CheckpointError, ConfigError
from fkt_plugin.run_dir import fraction_tag
from fkt_plugin.sweep import Busy, Sweep, claim, draw, recorded_command, run_sweep, write_report
from tests.helpers import RECIPES, REPO, run_tool

TINY = ["optimizer.batch_size=64", "backbone.kwargs.width=4", "scheduler.warmup_epochs=0",
        "accelerator=cpu", "++log_every_n_steps=1"]


def compare_cfg(data_dir: Path, out: Path, **changes) -> dict:
    cfg = {
        "recipes": str(RECIPES), "out": str(out), "fractions": [0.2], "seeds": [0],
        "overrides": [f"data.train_path={data_dir}", *TINY],
        "arms": [{"name": "supervised", "recipe": "supervised", "epochs": 1},
                 {"name": "simclr → linear", "recipe": "simclr", "epochs": 1,
                  "protocol": "linear"},
                 {"name": "simclr → fine-tune", "recipe": "simclr", "epochs": 1,
                  "protocol": "finetune"}],
        "eval": {"finetune": {"max_epochs": 1}},
    }
    return cfg | changes


@pytest.mark.parametrize(("change", "message"), [
    ({"seeds": []}, "seeds is empty"),
    ({"fractions": [0.1, 0.0]}, r"fractions\[...\]=0.0 is outside \(0.0, 1.0\]"),
    ({"fractions": [1.5]}, r"fractions\[...\]=1.5 is outside"),
    ({"arms": []}, "arms is empty"),
    ({"arms": [{"name": "a", "recipe": "simclr", "epochs": 1, "protocol": "probe"}]},
     "arms\\[0\\].protocol='probe' is unknown; use null .* linear, mlp, knn, finetune"),
    ({"arms": [{"name": "a", "recipe": "swav", "epochs": 1}]},
     "arm 'a': no recipe 'swav' in .*; known: byol, dae, fkt_joint, fkt_joint_guided, "
     "gsimclr, mvmr, mvmr_distill, simclr, supervised"),
    ({"arms": [{"name": "a", "recipe": "simclr", "epochs": 1}] * 2}, "two arms are named 'a'"),
    ({"arms": [{"name": "a", "recipe": "simclr", "epochs": {0.1: 3}}]},
     "no entry for label fraction 0.2"),
    ({"arms": [{"name": "a", "recipe": "simclr"}]}, r"arms\[0\] \(a\) needs epochs or steps"),
    ({"arms": [{"name": "a", "recipe": "simclr", "epochs": 1, "lr": 1}]},
     r"arms\[0\] has unknown keys lr"),
    ({"colour": 1}, "unknown compare keys: colour"),
    ({"processes": 0}, r"processes=0 must be an int > 0"),
    ({"arms": [{"name": "a", "recipe": "simclr", "epochs": 1, "fractions": [0.5]}]},
     r"arms\[0\].fractions=\[0.5\] must be a non-empty subset of fractions=\[0.2\]"),
])
def test_a_malformed_compare_recipe_is_a_clear_error(fmnist_dir: Path, tmp_path: Path,
                                                     change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Sweep(OmegaConf.create(compare_cfg(fmnist_dir, tmp_path, **change)))


def test_a_sweep_resumes_without_rerunning_finished_runs(fmnist_dir: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    sweep = Sweep(OmegaConf.create(compare_cfg(fmnist_dir, tmp_path / "out")))
    trained: list[str] = []
    real_train = fkt_plugin.runner.train

    def counting_train(cfg, *args, **kwargs):
        trained.append(cfg.name)
        if len(trained) == 3:
            raise KeyboardInterrupt  # the user stops the sweep during the fine-tuning run
        return real_train(cfg, *args, **kwargs)

    # Both callers of the runner: the sweep (training runs) and fine-tuning.
    monkeypatch.setattr(fkt_plugin.sweep.execute, "train", counting_train)
    monkeypatch.setattr(fkt_plugin.evaluation.protocols, "train", counting_train)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep, log=lambda line: None)
    # supervised, then the shared SimCLR pre-training; the fine-tune run was interrupted.
    assert trained[0].startswith("supervised-labels0.2") and trained[1].startswith("simclr-e1")
    finished = sweep.eval_file(sweep.jobs[0])
    stamp = finished.stat().st_mtime_ns

    # Resumed on another machine, with the result files but not the checkpoints: the
    # fine-tuning job needs the SimCLR pre-training, which trains again; finished jobs do not.
    pretraining = sweep.run_dir(sweep.jobs[1])
    for checkpoint in pretraining.glob("checkpoints/*.ckpt"):
        checkpoint.unlink()
    trained.clear()
    lines: list[str] = []
    notices: list[str] = []
    rows = run_sweep(Sweep(OmegaConf.create(compare_cfg(fmnist_dir, tmp_path / "out")),
                           log=notices.append), log=lines.append)
    assert len(trained) == 2 and trained[0] == pretraining.name
    assert "-finetune-labels0.2" in trained[1]
    assert notices == [f"{pretraining.name}: results read back but no checkpoint here; training "
                       "it again (same seed and settings) for the jobs that still need it"]
    assert finished.stat().st_mtime_ns == stamp
    assert "finished earlier, read back" in lines[0] and "running" in lines[2]
    assert [row["arm"] for row in rows] == ["supervised", "simclr → linear",
                                            "simclr → fine-tune"]
    tuned = json.loads(sweep.eval_file(sweep.jobs[2]).read_text())
    # The fine-tuning run started from the pre-trained backbone, every tensor matched.
    assert tuned["initialised_from"]["keys"].endswith("tensors loaded")

    trained.clear()
    report = write_report(sweep.cfg, sweep.out, rows)
    draw(sweep, rows)
    assert trained == []
    assert "| simclr → linear | " in report and "(n=1)" in report
    # The trained runs (supervised, the fine-tuning) say whether they ended still rising; the
    # linear probe has no validation curve, so its cell is empty.
    assert ["val_still_rising" in row for row in rows] == [True, False, True]
    rising = report.split("### Runs that ended with their validation accuracy still rising")[1]
    assert "| simclr → linear | - |" in rising
    assert re.search(r"\| supervised \| [01] of 1 \|", rising)
    lines_csv = (tmp_path / "out" / "results.csv").read_text().splitlines()
    assert len(lines_csv) == 4 and lines_csv[0].startswith("arm,label_fraction,seed,acc1")
    for picture in ("accuracy_vs_fraction.png", "training_curves.png", "embedding.png"):
        assert (tmp_path / "out" / picture).stat().st_size > 1000

    # The committed result files without any checkpoint (another checkout): the report is still
    # written; the embedding leaves out the arms whose network is not here, and says so.
    for checkpoint in (tmp_path / "out").glob("runs/*/checkpoints/*.ckpt"):
        checkpoint.unlink()
    newer = (tmp_path / "out" / "embedding.png").stat().st_mtime + 10
    os.utime(sweep.eval_file(sweep.jobs[0]), (newer, newer))
    notices.clear()
    draw(Sweep(OmegaConf.create(compare_cfg(fmnist_dir, tmp_path / "out")),
               log=notices.append), rows)
    assert notices == ["embedding.png: supervised, simclr → linear, simclr → fine-tune left out "
                       "(checkpoint not on this machine; rerun with the checkpoints to draw them)"]


def _cli(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The tool started as a real process: for the tests that need several of them."""
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def test_fkt_eval_probes_a_finished_run(fmnist_dir: Path, tmp_path: Path) -> None:
    train = run_tool(fkt_plugin.cli.train.main, "--config-path", str(RECIPES), "--config-name",
                     "simclr", f"data.train_path={fmnist_dir}", f"checkpoint.dir={tmp_path}",
                     "max_epochs=1", "++name=ssl", *TINY, cwd=tmp_path)
    assert train.returncode == 0, train.stderr[-2000:]
    done = run_tool(fkt_plugin.cli.eval.main, f"run_dir={tmp_path / 'ssl'}",
                    "protocols=[linear,knn]", "label_fraction=0.5", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    for protocol in ("linear", "knn"):
        saved = json.loads((tmp_path / "ssl" / "eval" / f"{protocol}-labels0.5.json").read_text())
        assert saved["label_fraction"] == 0.5 and 0.0 <= saved["test"]["acc1"] <= 1.0
        assert {"acc5", "f1_macro"} <= set(saved["test"])
        assert (tmp_path / "ssl" / "eval" / f"{protocol}-labels0.5-confusion.png").exists()
    assert (tmp_path / "ssl" / "eval" / "embedding-test.png").exists()


def test_fkt_eval_errors_name_the_problem(tmp_path: Path) -> None:
    missing = run_tool(fkt_plugin.cli.eval.main, f"run_dir={tmp_path / 'none'}", cwd=tmp_path)
    assert missing.returncode == 2 and "config.yaml does not exist" in missing.stderr
    bad = run_tool(fkt_plugin.cli.eval.main, f"run_dir={tmp_path}", "protocols=[svm]",
                   cwd=tmp_path)
    assert bad.returncode == 2
    assert "protocols=['svm'] must be a non-empty list of linear, mlp, knn, finetune" in bad.stderr


def test_fkt_compare_reports_a_bad_recipe(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(f"recipes: {RECIPES}\nseeds: []\narms: []\n")
    done = run_tool(fkt_plugin.cli.compare.main, "--config-path", str(tmp_path), "--config-name",
                    "bad", cwd=tmp_path)
    assert done.returncode == 2 and "error: seeds is empty" in done.stderr


@pytest.mark.parametrize("name", ["fashion_mnist", "fashion_mnist_all_arms", "demo",
                                  "cifar10_study_gpu"])
def test_the_shipped_compare_recipes_are_valid(name: str) -> None:
    from fkt_plugin.args.compare import seeds_for

    folder = RECIPES.parents[1] / "compare"
    sweep = Sweep(OmegaConf.load(folder / f"{name}.yaml"), base_dir=folder)
    arms = {str(arm.name) for arm in sweep.cfg.arms}
    assert any("fkt_joint" in arm for arm in arms) and any("supervised" in a for a in arms)
    assert len(sweep.jobs) == sum(len(seeds_for(sweep.cfg, float(f)))
                                  for arm in sweep.cfg.arms
                                  for f in arm.fractions or sweep.cfg.fractions)


def test_the_study_matches_its_arms_by_steps_and_counts_validation_labels() -> None:
    """The study's declared protocol: A, B, C, C' take the same optimiser steps with the same
    optimiser; labels are counted inside the budget; 5 seeds at 1% and 10%, 3 at 100%."""
    from fkt_plugin.args.run import validate_run_cfg

    folder = RECIPES.parents[1] / "compare"
    sweep = Sweep(OmegaConf.load(folder / "fashion_mnist_study.yaml"), base_dir=folder)
    seeds = {f: sorted({j.seed for j in sweep.jobs if j.fraction == f}) for f in (0.01, 0.1, 1.0)}
    assert seeds == {0.01: [0, 1, 2, 3, 4], 0.1: [0, 1, 2, 3, 4], 1.0: [0, 1, 2]}
    assert len(sweep.jobs) == len(sweep.cfg.arms) * 13
    matched = [j for j in sweep.jobs if j.arm.protocol is None and j.seed == 0
               and j.fraction == 0.01]
    cfgs = [validate_run_cfg(sweep.run_cfg(j)) for j in matched]
    assert {str(j.arm.name)[:2] for j in matched} == {"A ", "B ", "C ", "C'"}
    assert {c.max_steps for c in cfgs} == {630}
    assert len({(c.optimizer.name, c.optimizer.lr, c.optimizer.batch_size,
                 c.scheduler.warmup_epochs, c.backbone.name) for c in cfgs}) == 1
    assert {c.data.val_labels for c in cfgs} == {"budget"}
    ablation = next(c for j, c in zip(matched, cfgs, strict=True) if j.arm.name.startswith("B"))
    assert ablation.method_kwargs.ssl_weight == 0.0


def test_fkt_eval_of_a_checkpoint_trained_elsewhere(fmnist_dir: Path, tmp_path: Path) -> None:
    import torch

    from fkt_plugin.backbones import build_backbone
    from fkt_plugin.evaluation.protocols import evaluate_run

    torch.manual_seed(0)
    backbone, _ = build_backbone("small_cnn", in_channels=1, width=4)
    torch.save(backbone.state_dict(), tmp_path / "plain.pt")  # a plain state dict
    cfg = OmegaConf.create({
        "run_dir": str(tmp_path / "foreign"), "checkpoint": str(tmp_path / "plain.pt"),
        "recipe": str(RECIPES / "simclr.yaml"), "protocols": ["knn"],
        "recipe_overrides": [f"data.train_path={fmnist_dir}", "backbone.kwargs.width=4"],
        "plots": {"embedding": False, "confusion_matrix": False}})
    results = evaluate_run(cfg)
    assert 0.0 <= results["knn"]["test"]["acc1"] <= 1.0
    assert (tmp_path / "foreign" / "config.yaml").is_file()
    assert (tmp_path / "foreign" / "eval" / "knn-labels1.json").is_file()
    cfg.recipe_overrides = [f"data.train_path={fmnist_dir}", "backbone.kwargs.width=8"]
    with pytest.raises(ConfigError, match=r"different config \(backbone.kwargs.width: 4 -> 8"):
        evaluate_run(cfg)
    cfg.run_dir = str(tmp_path / "wider")
    with pytest.raises(CheckpointError, match="saved from another backbone"):
        evaluate_run(cfg)


def test_a_distillation_arm_gets_its_teacher_run_directory(fmnist_dir: Path,
                                                           tmp_path: Path) -> None:
    arms = [{"name": "teacher", "recipe": "simclr", "epochs": 1, "protocol": "linear",
             "overrides": ["backbone.kwargs.width=8"]},
            {"name": "distilled", "recipe": "mvmr_distill", "epochs": 1, "protocol": "linear",
             "teacher": "teacher", "overrides": ["method_kwargs.proj_hidden_dim=32",
                                                 "method_kwargs.proj_output_dim=32"]}]
    sweep = Sweep(OmegaConf.create(compare_cfg(fmnist_dir, tmp_path / "out", arms=arms)))
    rows = run_sweep(sweep, log=lambda line: None)
    assert [row["arm"] for row in rows] == ["teacher", "distilled"]
    teacher_dir = sweep.run_dir(sweep.jobs[0])
    student_cfg = OmegaConf.load(sweep.run_dir(sweep.jobs[1]) / "config.yaml")
    assert student_cfg.method_kwargs.teacher.run_dir == str(teacher_dir)
    assert sweep.run_dir(sweep.jobs[1]).name.endswith(f"-student-of-{teacher_dir.name}")
    header = (sweep.run_dir(sweep.jobs[1]) / "metrics.csv").read_text().splitlines()[0]
    assert "train_rep_teacher_loss" in header.split(",")
    with pytest.raises(ConfigError, match="sets cluster without k"):
        Sweep(OmegaConf.create(compare_cfg(fmnist_dir, tmp_path / "out", arms=[
            arms[0], {**arms[1], "cluster": {"restarts": 2}}])))


def test_the_last_epoch_study_differs_from_the_study_by_its_selection_alone() -> None:
    from hydra import compose, initialize_config_dir

    folder = RECIPES.parents[1] / "compare"
    with initialize_config_dir(config_dir=str(folder.resolve()), version_base="1.3"):
        study = compose(config_name="fashion_mnist_study")
        last = compose(config_name="fashion_mnist_study_last")
    assert (last.selection, study.selection) == ("last", "best_val")
    assert last.out != study.out
    changed = {key for key in {*study, *last} if study.get(key) != last.get(key)}
    assert changed == {"selection", "out"}
    sweep = Sweep(last, base_dir=folder)
    assert {sweep.run_cfg(job).selection for job in sweep.jobs} == {"last"}


@pytest.mark.parametrize("name", ["fashion_mnist_cluster_transfer", "fashion_mnist_mvmr",
                                  "fashion_mnist_gsimclr"])
def test_the_shipped_study_recipes_are_valid(name: str) -> None:
    folder = RECIPES.parents[1] / "compare"
    sweep = Sweep(OmegaConf.load(folder / f"{name}.yaml"), base_dir=folder)
    assert len(sweep.jobs) == len(sweep.cfg.arms) * len(sweep.cfg.fractions) * 3
    assert str(sweep.out).startswith("docs/results/")  # committed as the study goes
    students = [job for job in sweep.jobs if job.arm.teacher is not None]
    assert students
    for job in students:
        teacher = sweep.run_dir(sweep.teacher_job(job))
        cfg = sweep.run_cfg(job)
        if job.arm.k is None:
            assert cfg.method_kwargs.teacher.run_dir == str(teacher)
        else:
            assert str(sweep.pseudo_label_file(job)) == cfg.data.pseudo_labels


def test_the_report_pairs_arms_by_seed_and_bolds_only_cells_of_three_seeds(
        fmnist_dir: Path, tmp_path: Path) -> None:
    from scipy import stats

    cfg = compare_cfg(fmnist_dir, tmp_path / "out", fractions=[0.2, 1.0], seeds=[0, 1, 2],
                      paired=[["simclr → linear", "supervised"]])
    sweep = Sweep(OmegaConf.create(cfg))
    accuracy = {("supervised", 0): 0.70, ("supervised", 1): 0.72, ("supervised", 2): 0.71,
                ("simclr → linear", 0): 0.74, ("simclr → linear", 1): 0.73,
                ("simclr → linear", 2): 0.76}
    rows = [{"arm": arm, "label_fraction": 0.2, "seed": seed, "acc1": value, "f1_macro": value}
            for (arm, seed), value in accuracy.items()]
    for row in rows[:3]:  # the trained arm's runs: two of its three seeds ended still rising
        row["val_still_rising"] = row["seed"] != 1
    # At 100% labels one seed each: no interval, and no bold.
    rows += [{"arm": arm, "label_fraction": 1.0, "seed": 0, "acc1": 0.9 + i / 100,
              "f1_macro": 0.9} for i, arm in enumerate(["supervised", "simclr → linear"])]
    report = write_report(sweep.cfg, sweep.out, rows)
    a = [100 * accuracy[("simclr → linear", s)] for s in range(3)]
    b = [100 * accuracy[("supervised", s)] for s in range(3)]
    low, high = stats.ttest_rel(a, b).confidence_interval(0.95)
    mean = sum(x - y for x, y in zip(a, b, strict=True)) / 3
    assert f"| simclr → linear − supervised | {mean:+.2f} [{low:+.2f}, {high:+.2f}] (n=3) | " \
           "+1.00 (n=1, no interval) |" in report
    assert "**74.33 ± 1.53 (n=3)**" in report and "**91.00 (n=1)**" not in report
    assert "| supervised | 2 of 3 | - |\n| simclr → linear | - | - |" in report
    csv = (tmp_path / "out" / "results.csv").read_text()
    assert "simclr → linear − supervised" in csv and "ci95_low" in csv.splitlines()[0]
    with pytest.raises(ConfigError, match=r"paired\[0\]=\['supervised', 'dino'\] must be two"):
        Sweep(OmegaConf.create(compare_cfg(fmnist_dir, tmp_path, paired=[["supervised",
                                                                           "dino"]])))


def test_several_intervals_are_also_given_with_bonferronis_correction(
        fmnist_dir: Path, tmp_path: Path) -> None:
    from scipy import stats

    # supervised − simclr → linear per seed: 2, 3, 4 (excludes 0 at 95%, t = 5.2 < t(0.9875, 2));
    # supervised − simclr → fine-tune: 5.0, 5.2, 5.1 (excludes 0 at any usual level).
    scores = {"supervised": [80.0, 81.0, 82.0], "simclr → linear": [78.0, 78.0, 78.0],
              "simclr → fine-tune": [75.0, 75.8, 76.9]}
    cfg = compare_cfg(fmnist_dir, tmp_path / "out", seeds=[0, 1, 2],
                      paired=[["supervised", "simclr → linear"],
                              ["supervised", "simclr → fine-tune"]])
    rows = [{"arm": arm, "label_fraction": 0.2, "seed": seed, "acc1": value / 100,
             "f1_macro": value / 100}
            for arm, values in scores.items() for seed, value in enumerate(values)]
    report = write_report(Sweep(OmegaConf.create(cfg)).cfg, tmp_path / "out", rows)
    assert "2 intervals are read above" in report and "97.5% interval" in report
    for other in ("simclr → linear", "simclr → fine-tune"):
        differences = [x - y for x, y in zip(scores["supervised"], scores[other], strict=True)]
        result = stats.ttest_1samp(differences, 0.0)
        low, high = result.confidence_interval(0.975)
        mean = sum(differences) / 3
        assert f"| supervised − {other} | {mean:+.2f} [{low:+.2f}, {high:+.2f}] (n=3) |" in report
    reading = report.split("### Reading")[1]
    linear, finetune = (line for line in reading.splitlines() if line.startswith("- "))
    assert "beats simclr → linear" in linear and "With Bonferroni's correction for the 2 " \
        "intervals it holds 0." in linear
    assert "beats simclr → fine-tune" in finetune and "still excludes 0" in finetune


def test_a_claim_is_exclusive_between_processes_and_freed_when_the_holder_dies(
        tmp_path: Path) -> None:
    lock = tmp_path / "locks" / "run-a.lock"
    lock.parent.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time\n"
         f"f = open({str(lock)!r}, 'a'); fcntl.flock(f, fcntl.LOCK_EX)\n"
         "print('held', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(Busy, match="run-a"), claim(lock):
            pass
    finally:
        holder.kill()
        holder.wait()
    # Held here now: a second claim, even from this process, is refused; then it is free.
    with claim(lock), pytest.raises(Busy), claim(lock):
        pass
    with claim(lock):
        pass


def _finish_run(run_dir: Path) -> None:
    """What a finished training run leaves: a checkpoint and its results."""
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    (run_dir / "results.json").write_text(json.dumps({"test": {"acc1": 0.5}}))


def _fake_evaluate(settings) -> None:
    """Stands in for evaluate_run: writes the protocol's result file where the sweep reads it."""
    tag = fraction_tag(settings.label_fraction)
    out = Path(settings.run_dir) / "eval" / f"{settings.protocols[0]}-{tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"test": {"acc1": 0.25}}))


def test_the_progress_line_counts_the_jobs_other_processes_finished(
        fmnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sweep = Sweep(OmegaConf.create(compare_cfg(fmnist_dir, tmp_path / "out")))
    last = sweep.jobs[2]

    def fake_train(cfg, *args, **kwargs):
        _finish_run(sweep.out / "runs" / cfg.name)
        # Meanwhile another process of the sweep finishes the last job.
        sweep.eval_file(last).parent.mkdir(parents=True, exist_ok=True)
        sweep.eval_file(last).write_text(json.dumps({"test": {"acc1": 0.25}}))

    monkeypatch.setattr(fkt_plugin.sweep.execute, "train", fake_train)
    monkeypatch.setattr(fkt_plugin.sweep.execute, "evaluate_run", _fake_evaluate)
    lines: list[str] = []
    run_sweep(sweep, log=lines.append)
    running = [line for line in lines if ": running (" in line]
    assert running[0].startswith("[1/3]") and "(0/3 to do done" in running[0]
    # The second job starts after the first (this process) and the third (the other) finished.
    assert running[1].startswith("[2/3]") and "(2/3 to do done" in running[1]
    assert "min left" in running[1] and len(running) == 2
    assert lines[-1].startswith("[3/3]") and "finished by another process" in lines[-1]


def test_a_sweep_puts_off_work_another_process_holds_and_reads_it_back(
        fmnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sweep = Sweep(OmegaConf.create(compare_cfg(fmnist_dir, tmp_path / "out")))
    pretraining = sweep.run_dir(sweep.jobs[1])
    trained: list[str] = []

    def fake_train(cfg, *args, **kwargs):
        trained.append(cfg.name)
        _finish_run(sweep.out / "runs" / cfg.name)

    monkeypatch.setattr(fkt_plugin.sweep.execute, "train", fake_train)
    monkeypatch.setattr(fkt_plugin.sweep.execute, "evaluate_run", _fake_evaluate)
    # "Another process" trains the shared pre-training; it finishes while this one waits.
    lock = sweep.out / "locks" / f"run-{pretraining.name}.lock"
    lock.parent.mkdir(parents=True)
    other = lock.open("a")
    fcntl.flock(other, fcntl.LOCK_EX)

    def other_finishes() -> None:
        _finish_run(pretraining)
        other.close()

    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        if line.startswith("[1/3]") and "running" in line:
            threading.Timer(0.3, other_finishes).start()

    rows = run_sweep(sweep, log=log, poll_seconds=0.05)
    # Only the job nobody else held was trained here; the pre-training was read back.
    assert trained == [sweep.run_dir(sweep.jobs[0]).name]
    assert [row["arm"] for row in rows] == ["supervised", "simclr → linear",
                                            "simclr → fine-tune"]
    claimed = [line for line in lines if "claimed by another process" in line]
    assert len(claimed) == 2 and all(pretraining.name in line for line in claimed)
    assert sum("done after waiting" in line for line in lines) == 2
    # Tried again every poll while it waited, each job still says once that it runs.
    assert sum(": running (" in line for line in lines) == 3


def test_one_process_of_a_sweep_writes_its_report(fmnist_dir: Path, tmp_path: Path) -> None:
    cfg = compare_cfg(fmnist_dir, tmp_path / "out", summary_only=True)
    (tmp_path / "study.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))
    sweep = Sweep(OmegaConf.create(cfg))
    for job in sweep.jobs:  # a finished sweep's result files, as committed
        sweep.eval_file(job).parent.mkdir(parents=True, exist_ok=True)
        sweep.eval_file(job).write_text(json.dumps(
            {"test": {"acc1": 0.5, "f1_macro": 0.5}, "finetune_run": "tuned"}))
    args = ("--config-path", str(tmp_path), "--config-name", "study")
    with claim(sweep.lock_file("report", "report")):  # another process is writing it
        waiting = run_tool(fkt_plugin.cli.compare.main, *args, cwd=tmp_path)
    assert waiting.returncode == 0, waiting.stderr[-2000:]
    assert "another process of this sweep is writing the report" in waiting.stdout
    assert not (tmp_path / "out" / "results.md").exists()
    done = run_tool(fkt_plugin.cli.compare.main, *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| supervised | 50.00 (n=1) |" in (tmp_path / "out" / "results.md").read_text()


def test_processes_share_a_sweep_and_each_job_runs_once(fmnist_dir: Path, tmp_path: Path) -> None:
    cfg = compare_cfg(fmnist_dir, tmp_path / "out", processes=2)
    (tmp_path / "study.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))
    done = _cli("fkt_plugin.cli.compare", "--config-path", str(tmp_path), "--config-name",
                "study", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 processes share the sweep" in done.stdout
    helper = (tmp_path / "out" / "logs" / "process-2.log").read_text()
    assert "Traceback" not in helper
    # The first process writes the report; the helper leaves it.
    assert "Mean ± std" in done.stdout and "Mean ± std" not in helper
    # Each of the 3 jobs ran in one of the two processes; the other read it back.
    running = [line for line in (done.stdout + helper).splitlines() if ": running (" in line]
    assert len(running) == 3
    assert len((tmp_path / "out" / "results.csv").read_text().splitlines()) == 4


def test_a_sweep_refuses_runs_made_under_another_selection_or_label_protocol(
        fmnist_dir: Path, tmp_path: Path) -> None:
    sweep = Sweep(OmegaConf.create(compare_cfg(fmnist_dir, tmp_path / "out",
                                               selection="best_val", val_labels="budget")))
    for job in sweep.jobs:  # result files of a sweep run with best_val and budget
        for results in (sweep.run_dir(job) / "results.json", sweep.eval_file(job)):
            results.parent.mkdir(parents=True, exist_ok=True)
            results.write_text(json.dumps({"test": {"acc1": 0.5}, "selection": "best_val",
                                           "labels": {"val_labels": "budget"}}))
    assert len(run_sweep(sweep, train_missing=False, log=lambda line: None)) == 3
    for change, message in [({"selection": "last"}, "with selection=best_val, this sweep asks "
                                                    "for selection=last; give the sweep another"),
                            ({"val_labels": "extra"}, "with val_labels=budget, this sweep asks "
                                                      "for val_labels=extra")]:
        other = Sweep(OmegaConf.create(compare_cfg(fmnist_dir, tmp_path / "out", **change)))
        with pytest.raises(ConfigError, match=message):
            run_sweep(other, train_missing=False, log=lambda line: None)


COMMITTED_STUDIES = {"fashion_mnist_study": "fashion_mnist/sweep",
                     "fashion_mnist_study_last": "fashion_mnist/sweep_last",
                     "fashion_mnist_cluster_transfer": "cluster_transfer/sweep",
                     "fashion_mnist_gsimclr": "gsimclr/sweep", "fashion_mnist_mvmr": "mvmr/sweep",
                     "fashion_mnist_convergence": "convergence/sweep"}


@pytest.mark.parametrize("recipe", sorted(COMMITTED_STUDIES))
def test_a_committed_study_rebuilds_its_report_byte_identical_composing_nothing(
        recipe: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    committed = REPO / "docs" / "results" / COMMITTED_STUDIES[recipe]
    copy = tmp_path / "sweep"
    shutil.copytree(committed, copy, ignore=shutil.ignore_patterns("*.png", "*.npz", "locks"))
    # What is rebuilt is gone but for the command the report quotes (the one that ran it).
    (copy / "results.csv").unlink()
    command = recorded_command(copy)
    (copy / "results.md").write_text(f"Command: `{command}`\n")

    def no_composing(*args: object, **kwargs: object) -> None:
        raise AssertionError("a summary composed a recipe")

    monkeypatch.setattr(fkt_plugin.sweep.plan, "compose_recipe", no_composing)
    done = run_tool(fkt_plugin.cli.compare.main, "--config-path", "recipes/compare",
                    "--config-name", recipe, "summary_only=true", f"out={copy}", cwd=REPO)
    assert done.returncode == 0, done.stderr
    for name in ("results.md", "results.csv"):
        assert (copy / name).read_bytes() == (committed / name).read_bytes(), name
