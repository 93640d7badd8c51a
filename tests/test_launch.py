"""A sweep through submitit (``launcher=slurm``): the layered plan, the sbatch scripts SLURM
would get (written without submitting), and submitit's local executor running a sweep end to
end and resuming after a failed task."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf

import fkt_plugin.cli.compare
from fkt_plugin.errors import ConfigError, FKTError
from fkt_plugin.sweep import Sweep, run_sweep
from fkt_plugin.sweep.execute import use_allotted_cores
from fkt_plugin.sweep.launch import SweepSpec, launch, plan_units
from tests.helpers import REPO, run_tool
from tests.test_compare import compare_cfg

LOCAL = {"name": "slurm", "cluster": "local", "gpus_per_job": 0, "cpus_per_job": 1,
         "mem_gb": 2, "timeout_min": 20, "wait": True}


def _sweep_cfg(fmnist_dir: Path, out: Path, cluster: str = "local",
               seeds: tuple[int, ...] = (0, 1)) -> dict:
    """Two arms x two fractions x ``seeds``; simclr's pre-training is shared by its
    fractions."""
    return compare_cfg(fmnist_dir, out, fractions=[0.2, 0.5], seeds=list(seeds),
                       arms=[{"name": "supervised", "recipe": "supervised", "epochs": 1},
                             {"name": "simclr → linear", "recipe": "simclr", "epochs": 1,
                              "protocol": "linear"}],
                       launcher=LOCAL | {"cluster": cluster})


def test_submitit_runs_a_sweep_with_a_shared_pretraining_to_its_rows(
        fmnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # One seed: every task is a fresh interpreter (seconds each); the other tests here cover
    # the second seed's share of the plan.
    cfg = _sweep_cfg(fmnist_dir, tmp_path / "out", seeds=(0,))
    sweep = Sweep(OmegaConf.create(cfg))
    layers = plan_units(sweep)
    assert [len(layer) for layer in layers] == [3, 0, 0, 2]  # 2 supervised + 1 pre-training
    lines: list[str] = []
    # The tasks inherit this environment: without OMP_NUM_THREADS, launcher.cpus_per_job sets
    # their threads.
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert launch(sweep, SweepSpec(cfg, ".", str(Path.cwd())), log=lines.append)
    assert lines[0].startswith("5 units to run in 2 layers (3 training runs, 2 evaluations)")
    rows = run_sweep(Sweep(OmegaConf.create(cfg)), train_missing=False)
    assert len(rows) == 4
    pretrainings = {row["run"] for row in rows if row["arm"] == "simclr → linear"}
    assert len(pretrainings) == 1  # shared by both fractions
    assert plan_units(Sweep(OmegaConf.create(cfg))) == [[], [], [], []]
    logs = "".join(log.read_text() for log in (tmp_path / "out" / "slurm").glob("*_log.out"))
    assert logs.count("1 torch thread(s) (launcher.cpus_per_job=1)") == 5, logs


def test_a_task_takes_its_allotted_cores_at_most_the_machines(
        monkeypatch: pytest.MonkeyPatch) -> None:
    saved = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert use_allotted_cores(1) == 1 == torch.get_num_threads()
        assert use_allotted_cores(10_000) == os.cpu_count() == torch.get_num_threads()
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        assert use_allotted_cores(1) == 3 == torch.get_num_threads()
    finally:
        torch.set_num_threads(saved)


def test_a_failed_task_is_named_and_the_same_command_finishes_the_rest(
        fmnist_dir: Path, tmp_path: Path) -> None:
    # submitit's debug executor: the same submissions, run in this process (seconds, not the
    # minute of a fresh interpreter per task).
    cfg = _sweep_cfg(fmnist_dir, tmp_path / "out", cluster="debug")
    sweep = Sweep(OmegaConf.create(cfg))
    spoiled = sweep.folder(sweep.jobs[0])
    spoiled.path.mkdir(parents=True)
    # A folder of another run under the name: that run's task fails, the others go on.
    spoiled.config_file.write_text("method: byol\nseed: 99\n")
    with pytest.raises(FKTError, match=rf"1 of 6 tasks failed: train {spoiled.name}: "
                                       r".*different config.* \(log: "):
        launch(sweep, SweepSpec(cfg, ".", str(Path.cwd())), log=lambda line: None)
    done = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "runs").glob("*/results.json")}
    assert len(done) == 5
    spoiled.config_file.unlink()
    sweep = Sweep(OmegaConf.create(cfg))
    assert [len(layer) for layer in plan_units(sweep)] == [1, 0, 0, 4]
    assert launch(sweep, SweepSpec(cfg, ".", str(Path.cwd())), log=lambda line: None)
    assert all(path.stat().st_mtime_ns == stamp for path, stamp in done.items())
    assert len(run_sweep(Sweep(OmegaConf.create(cfg)), train_missing=False)) == 8


def _sbatch(script: Path) -> dict[str, str]:
    return dict(re.findall(r"^#SBATCH --([a-z-]+)=(.*)$", script.read_text(), flags=re.M))


def test_the_study_dry_run_writes_the_arrays_and_dependencies_sbatch_would_get(
        tmp_path: Path) -> None:
    out = tmp_path / "study"
    done = run_tool(fkt_plugin.cli.compare.main, "--config-path", "recipes/compare",
                    "--config-name", "fashion_mnist_study", "launcher=slurm",
                    "launcher.partition=gpu", "launcher.gpus_per_job=2", "launcher.timeout_min=90",
                    "launcher.max_parallel=16", "launcher.account=lab", "launcher.dry_run=true",
                    "launcher.seconds_per_job=600", f"out={out}", cwd=REPO)
    assert done.returncode == 0, done.stderr
    study = yaml.safe_load((REPO / "recipes" / "compare" / "fashion_mnist_study.yaml").read_text())
    # Read from the recipe, not from the plan: one run per arm, fraction and seed for the arms
    # scored by their own classifier; one pre-training per seed for each distinct protocol
    # arm's recipe and overrides; one evaluation per protocol job.
    seeds = {float(f): len(s) for f, s in study["seeds"].items()}
    own = [arm for arm in study["arms"] if arm.get("protocol") is None]
    probed = [arm for arm in study["arms"] if arm.get("protocol") is not None]
    shared = {(arm["recipe"], tuple(arm.get("overrides", []))) for arm in probed}
    trainings = sum(seeds.values()) * len(own) + max(seeds.values()) * len(shared)
    evaluations = sum(seeds.values()) * len(probed)
    assert f"{trainings + evaluations} units to run in 2 layers" in done.stdout
    assert f"{trainings} training runs x 600 s" in done.stdout
    assert f"= about {trainings * 600 * 2 / 3600:.2f} GPU-hours" in done.stdout
    scripts = sorted((out / "slurm" / "dry_run").glob("*.sh"))
    assert [s.name for s in scripts] == ["layer0-training_runs.sh", "layer3-evaluations.sh"]
    first, last = (_sbatch(s) for s in scripts)
    for options in (first, last):
        assert options["partition"] == "gpu" and options["time"] == "90"
        assert options["account"] == "lab"
    # Training runs get both GPUs, a task per GPU (Lightning's SLURM environment for the
    # recipe's devices=2 strategy=ddp); an evaluation needs one.
    assert (first["gpus-per-node"], first["ntasks-per-node"]) == ("2", "2")
    assert (last["gpus-per-node"], last["ntasks-per-node"]) == ("1", "1")
    assert first["array"] == f"0-{trainings - 1}%16" and "dependency" not in first
    assert last["array"] == f"0-{evaluations - 1}%16"
    assert last["dependency"] == "'afterany:<job id of layer0-training_runs>'"
    assert not list((out / "runs").glob("*"))  # nothing ran


@pytest.mark.parametrize(("override", "message"), [
    ("launcher.gpus_per_job=-1", "launcher.gpus_per_job=-1 must be an int >= 0"),
    ("launcher.cluster=pbs", "launcher.cluster='pbs' is unknown; use one of slurm, local, debug"),
    ("launcher.timeout_min=0", "launcher.timeout_min=0 must be an int > 0"),
    ("launcher.mem_gb=lots", "launcher.mem_gb='lots': Value 'lots' of type 'str' could not be "
                             "converted to Integer")])
def test_a_malformed_launcher_block_is_refused_naming_the_key(override: str, message: str) -> None:
    done = run_tool(fkt_plugin.cli.compare.main, "--config-path", "recipes/compare",
                    "--config-name", "demo", "launcher=slurm", override, cwd=REPO)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {message}"


def test_an_unknown_launcher_lists_the_known_ones() -> None:
    done = run_tool(fkt_plugin.cli.compare.main, "--config-path", "recipes/compare",
                    "--config-name", "demo", "launcher=pbs", cwd=REPO)
    assert done.returncode != 0
    assert "Could not find 'launcher/pbs'" in done.stderr
    assert "local" in done.stderr and "slurm" in done.stderr


def test_the_dry_run_needs_the_slurm_cluster() -> None:
    with pytest.raises(ConfigError, match="launcher.dry_run=true writes SLURM's sbatch"):
        Sweep(OmegaConf.create({"recipes": "recipes/pretrain/fashion_mnist", "arms": [
            {"name": "a", "recipe": "supervised", "epochs": 1}],
            "launcher": {"name": "slurm", "cluster": "local", "dry_run": True}}), base_dir=REPO)


def _readme_commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text().split("### Studies on a SLURM cluster", 1)[1]
    block = text.split("```bash", 1)[1].split("```", 1)[0]
    return [line.split() for line in block.strip().splitlines()]


def test_the_readme_cluster_commands_work_as_typed(tmp_path: Path) -> None:
    # A checkout of the recipes and the committed study, so that nothing is written in ours.
    shutil.copytree(REPO / "recipes", tmp_path / "recipes")
    study = Path("docs") / "results" / "fashion_mnist" / "sweep"
    shutil.copytree(REPO / study, tmp_path / study,
                    ignore=shutil.ignore_patterns("*.png", "locks", "slurm"))
    dry_run, submit, summary = _readme_commands()
    assert dry_run[0] == submit[0] == summary[0] == "fkt-compare"
    done = run_tool(fkt_plugin.cli.compare.main, *dry_run[1:], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # The committed study is finished: nothing is left to submit.
    assert done.stdout.startswith("0 units to run in 0 layers")
    (tmp_path / study / "results.csv").unlink()  # one job to do again: its evaluation file
    evaluation = next((tmp_path / study / "runs").glob("*/eval/linear-labels0.01.json"))
    evaluation.unlink()
    done = run_tool(fkt_plugin.cli.compare.main, *dry_run[1:], cwd=tmp_path)
    # Its pre-training's checkpoint is not in the committed files: it is trained again first.
    assert done.stdout.startswith("2 units to run in 2 layers (1 training runs, 1 "
                                  "evaluations)"), done.stdout
    script = tmp_path / study / "slurm" / "dry_run" / "layer3-evaluations.sh"
    assert _sbatch(script)["partition"] == "gpu"
    # Submitting needs SLURM: here the error says so and what to do instead.
    done = run_tool(fkt_plugin.cli.compare.main, *submit[1:], cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("error: launcher=slurm submits with SLURM's sbatch")
    done = run_tool(fkt_plugin.cli.compare.main, *summary[1:], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / study / "results.csv").is_file()


def test_a_sweep_killed_mid_run_resumes_without_retraining_finished_runs(
        fmnist_dir: Path, tmp_path: Path) -> None:
    cfg = compare_cfg(fmnist_dir, tmp_path / "out", fractions=[0.2], seeds=[0],
                      arms=[{"name": "short", "recipe": "supervised", "epochs": 1},
                            {"name": "long", "recipe": "supervised", "epochs": 40}],
                      launcher=dict(LOCAL))
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(
        {"defaults": ["fkt_compare", "_self_"], **cfg}, allow_unicode=True))
    command = [sys.executable, "-m", "fkt_plugin.cli.compare", "--config-path", str(tmp_path),
               "--config-name", "study"]
    sweep = Sweep(OmegaConf.create(cfg))
    short, long = (sweep.folder(job) for job in sweep.jobs)
    # The command as a user runs it, its tasks as submitit's local processes; killed (the
    # whole process group, as a node failure would) once the short run has finished and the
    # long one has written a checkpoint.
    with subprocess.Popen(command, cwd=tmp_path, start_new_session=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as first:
        deadline = time.time() + 300
        while not (short.results_file.is_file()
                   and (long.checkpoints / "last.ckpt").is_file()):
            assert time.time() < deadline and first.poll() is None, "the sweep did not start"
            time.sleep(0.2)
        os.killpg(first.pid, signal.SIGKILL)
    assert not long.results_file.exists()
    finished = short.results_file.stat().st_mtime_ns
    sweep = Sweep(OmegaConf.create(cfg))
    assert [[u.name for u in layer] for layer in plan_units(sweep)] == [[long.name], [], [], []]
    # The same command again (its tasks in this process: submitit's debug executor).
    done = run_tool(fkt_plugin.cli.compare.main, "--config-path", str(tmp_path),
                    "--config-name", "study", "launcher.cluster=debug", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert short.results_file.stat().st_mtime_ns == finished
    assert long.read_results().resumed_from == str(long.checkpoints / "last.ckpt")
    assert (tmp_path / "out" / "results.md").is_file()
