"""fkt-train end to end, auto-resume, clear errors at the command line, reproducibility."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

import fkt_plugin.cli.cluster
import fkt_plugin.cli.compare
import fkt_plugin.cli.eval
import fkt_plugin.cli.train
from fkt_plugin.errors import ConfigError
from fkt_plugin.run_dir import RunDirectory
from fkt_plugin.runner import train
from tests.helpers import RECIPES, REPO, load_recipe, run_tool, tiny_overrides


def test_fkt_train_end_to_end(fmnist_dir: Path, tmp_path: Path) -> None:
    # A real process, as a user starts it; the other command-line tests run the entry point in
    # this one (tests.helpers.run_tool).
    done = subprocess.run([sys.executable, "-m", "fkt_plugin.cli.train", "--config-path",
                           str(RECIPES), "--config-name", "fkt_joint",
                           *tiny_overrides(fmnist_dir, tmp_path / "runs"),
                           "data.label_fraction=0.2", "++name=e2e"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    run_dir = tmp_path / "runs" / "e2e"
    text = (run_dir / "results.json").read_text()
    results = json.loads(text)
    # One line per class of the confusion matrix (a 1,000-class matrix stays a few MB).
    assert all(json.dumps(row) in text for row in results["test_confusion_matrix"])
    assert results["method"] == "fkt_joint" and results["label_fraction"] == 0.2
    # The budget: 20% of the 1,400 images labelled (per class, rounded), validation inside it.
    assert results["labels"]["total"] == pytest.approx(0.2 * 1400, abs=10)
    assert results["labels"]["train"] == results["labelled_train_images"]
    assert results["labels"]["train"] + results["labels"]["val"] == results["labels"]["total"]
    for key in ("acc1", "precision_macro", "recall_macro", "f1_macro"):
        assert 0.0 <= results["test"][key] <= 1.0
    assert {"acc1", "acc5", "knn_acc1", "loss"} <= set(results["val"])
    assert results["device"] == "1 x cpu" and results["precision"] == "32-true"
    assert (run_dir / "checkpoints" / "best.ckpt").exists()
    header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train_nce_loss", "train_class_loss", "train_acc1", "val_acc1",
            "val_knn_acc1"} <= set(header)
    assert not (tmp_path / "outputs").exists()  # hydra writes nothing of its own


def test_unknown_method_on_the_command_line(fmnist_dir: Path, tmp_path: Path) -> None:
    done = run_tool(fkt_plugin.cli.train.main, "--config-path", str(RECIPES), "--config-name",
                    "simclr", *tiny_overrides(fmnist_dir, tmp_path), "method=swav", cwd=tmp_path)
    assert done.returncode == 2
    assert ("error: unknown method 'swav'; known methods: byol, dae, fkt_joint, mvmr, simclr, "
            "supervised") in done.stderr
    assert "Traceback" not in done.stderr


def test_help_lists_methods_and_datasets(tmp_path: Path) -> None:
    done = run_tool(fkt_plugin.cli.train.main, "--help", cwd=tmp_path)
    assert done.returncode == 0
    assert "methods:   byol, dae, fkt_joint, mvmr, simclr, supervised" in done.stdout
    assert "datasets:  aptos, cifar10, cifar100, fashion_mnist, folder, intel, stl10" in done.stdout


class _Interrupt(pl.Callback):
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == 1:
            raise RuntimeError("simulated interruption")


class _EpochRecorder(pl.Callback):
    def __init__(self) -> None:
        self.epochs: list[int] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epochs.append(trainer.current_epoch)


def test_an_interrupted_run_resumes_from_its_checkpoint(fmnist_dir: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    overrides = [*tiny_overrides(fmnist_dir, tmp_path), "max_epochs=2", "++name=resume"]
    with pytest.raises(RuntimeError, match="simulated interruption"):
        train(load_recipe("supervised", overrides), callbacks=[_Interrupt()])
    cfg = load_recipe("supervised", overrides)
    last = RunDirectory.of(cfg).path / "checkpoints" / "last.ckpt"
    assert last.exists() and not (RunDirectory.of(cfg).path / "results.json").exists()
    recorder = _EpochRecorder()
    results = train(cfg, callbacks=[recorder])
    assert recorder.epochs == [1]
    assert results["resumed_from"] == str(last)
    assert f"resuming resume from {last} after epoch 1 " in capsys.readouterr().out
    with open(RunDirectory.of(cfg).path / "metrics.csv", newline="") as handle:
        epochs = {row["epoch"] for row in csv.DictReader(handle) if row.get("val_acc1")}
    assert {"0", "1"} <= epochs  # the epoch before the interruption is still in the log


def test_a_run_directory_of_another_config_is_not_resumed(fmnist_dir: Path,
                                                          tmp_path: Path) -> None:
    overrides = [*tiny_overrides(fmnist_dir, tmp_path), "++name=clash"]
    train(load_recipe("supervised", overrides))
    with pytest.raises(ConfigError, match=r"different config \(optimizer.lr: 0.12 -> 0.5"):
        train(load_recipe("supervised", [*overrides, "optimizer.lr=0.5"]))


def test_the_same_seed_gives_the_same_numbers(fmnist_dir: Path, tmp_path: Path) -> None:
    results = [train(load_recipe("fkt_joint", [*tiny_overrides(fmnist_dir, tmp_path),
                                               "data.label_fraction=0.3", f"++name=run{i}"]))
               for i in range(2)]
    assert results[0]["test"] == results[1]["test"]
    assert results[0]["val"] == results[1]["val"]
    other = train(load_recipe("fkt_joint", [*tiny_overrides(fmnist_dir, tmp_path),
                                            "data.label_fraction=0.3", "seed=6", "++name=run2"]))
    assert other["val"] != results[0]["val"]


def test_the_torchvision_backend_trains_from_the_same_recipe(fmnist_dir: Path,
                                                             tmp_path: Path) -> None:
    overrides = [*tiny_overrides(fmnist_dir, tmp_path), "data.augmentation_backend=torchvision",
                 "data.num_workers=0"]
    with pytest.warns(UserWarning, match="torchvision with data.num_workers=0"):
        results = train(load_recipe("simclr", overrides))
    assert results["train_images"] > 0 and 0.0 <= results["test"]["acc1"] <= 1.0
    saved = (tmp_path / results["name"] / "config.yaml").read_text()
    assert "augmentation_backend: torchvision" in saved


def test_sync_batchnorm_without_a_gpu_is_refused(fmnist_dir: Path, tmp_path: Path) -> None:
    cfg = load_recipe("simclr", [*tiny_overrides(fmnist_dir, tmp_path), "sync_batchnorm=true"])
    with pytest.raises(ConfigError, match="sync_batchnorm=true needs GPUs"):
        train(cfg)


def test_bf16_mixed_precision_runs_the_backbone_in_bfloat16(fmnist_dir: Path,
                                                           tmp_path: Path) -> None:
    dtypes: list[torch.dtype] = []

    class RecordDtype(pl.Callback):
        def on_fit_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
            module.backbone.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))

    cfg = load_recipe("fkt_joint", [*tiny_overrides(fmnist_dir, tmp_path), "precision=bf16-mixed"])
    results = train(cfg, callbacks=[RecordDtype()])
    assert dtypes and set(dtypes) == {torch.bfloat16}
    assert 0.0 <= results["test"]["acc1"] <= 1.0


def test_a_relative_recipe_folder_and_name_work_as_the_readme_types_them() -> None:
    done = run_tool(fkt_plugin.cli.train.main, "--config-path", "recipes/pretrain/fashion_mnist",
                    "--config-name", "supervised", "data.label_fraction=0.1", "max_epochs=30",
                    "name=sup-10pct", "--cfg", "job", cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "name: sup-10pct" in done.stdout and "label_fraction: 0.1" in done.stdout


def test_a_numeric_run_name_is_a_string(make_cfg) -> None:
    from fkt_plugin.args.run import validate_run_cfg

    cfg = make_cfg("supervised", "name=20261125")
    assert validate_run_cfg(cfg).name == "20261125"


def test_the_readme_mvmr_commands_compose_as_typed() -> None:
    for name, extra in (("mvmr", ["name=mvmr-fmnist"]),
                        ("mvmr_distill", ["method_kwargs.teacher.run_dir=trained_models/"
                                          "simclr-fashion_mnist-labels1-seed5",
                                          "name=mvmr-distilled"])):
        done = run_tool(fkt_plugin.cli.train.main, "--config-path",
                        "recipes/pretrain/fashion_mnist", "--config-name", name, *extra,
                        "--cfg", "job", cwd=REPO)
        assert done.returncode == 0, done.stderr
        assert "method: mvmr" in done.stdout and "representation_dependence: maximise" in (
            done.stdout)
    readme = (REPO / "README.md").read_text()
    assert "--config-name mvmr name=mvmr-fmnist" in readme
    assert "method_kwargs.teacher.run_dir=trained_models/simclr-fashion_mnist-labels1-seed5" in (
        readme)


def test_the_readme_gsimclr_commands_compose_as_typed() -> None:
    readme = (REPO / "README.md").read_text()
    for name, extra in (("dae", ["name=dae-fmnist"]),
                        ("gsimclr", ["data.pseudo_labels=clusters/dae-k256.npz",
                                     "name=gsimclr-fmnist"])):
        assert f"--config-name {name}" in readme and extra[-1] in readme
        done = run_tool(fkt_plugin.cli.train.main, "--config-path",
                        "recipes/pretrain/fashion_mnist", "--config-name", name, *extra,
                        "--cfg", "job", cwd=REPO)
        assert done.returncode == 0, done.stderr
        assert f"name: {extra[-1].split('=')[1]}" in done.stdout
    assert "fkt-cluster run_dir=trained_models/dae-fmnist k=256 out=clusters/dae-k256.npz" in readme


@pytest.mark.parametrize(("tool", "args", "message"), [
    ("train", ["--config-path", "recipes/pretrain/fashion_mnist", "--config-name", "simclr",
               "knn_eval.enabled=yes"], "knn_eval.enabled='yes' must be true or false"),
    ("cluster", ["run_dir=trained_models/t", "k=4", "out=c.npz", "whiten=flase"],
     "whiten='flase' must be true or false"),
    ("compare", ["--config-path", "recipes/compare", "--config-name", "demo", "summary_only=1"],
     "summary_only=1 must be true or false"),
    ("eval", ["run_dir=trained_models/t", "plots.embedding=no"],
     "plots.embedding='no' must be true or false"),
])
def test_a_switch_given_something_else_than_true_or_false_is_refused(
        tool: str, args: list[str], message: str) -> None:
    main = {"train": fkt_plugin.cli.train.main, "cluster": fkt_plugin.cli.cluster.main,
            "compare": fkt_plugin.cli.compare.main, "eval": fkt_plugin.cli.eval.main}[tool]
    done = run_tool(main, *args, cwd=REPO)
    assert done.returncode == 2 and f"error: {message}" in done.stderr


@pytest.mark.parametrize("tool", ["compare", "eval", "cluster"])
def test_the_help_explains_every_key_the_tool_takes(tool: str, tmp_path: Path) -> None:
    from fkt_plugin.args.cluster import CLUSTER_DEFAULTS
    from fkt_plugin.args.compare import COMPARE_DEFAULTS
    from fkt_plugin.args.evaluation import EVAL_DEFAULTS

    main, keys = {"compare": (fkt_plugin.cli.compare.main, COMPARE_DEFAULTS),
                  "eval": (fkt_plugin.cli.eval.main, EVAL_DEFAULTS),
                  "cluster": (fkt_plugin.cli.cluster.main, CLUSTER_DEFAULTS)}[tool]
    done = run_tool(main, "--help", cwd=tmp_path)
    assert done.returncode == 0
    # A key is explained where a line starts with it, or where the help writes key=... or
    # key.sub... (a group's keys, e.g. linear.max_iter).
    lines = done.stdout.splitlines()
    undocumented = [key for key in keys if not any(
        line.split()[:1] == [key] or f"{key}=" in line or f"{key}." in line for line in lines)]
    assert undocumented == []


@pytest.mark.parametrize("tool", ["train", "compare"])
def test_no_recipe_on_the_command_line_lists_the_shipped_ones(tool: str, tmp_path: Path) -> None:
    main = {"train": fkt_plugin.cli.train.main, "compare": fkt_plugin.cli.compare.main}[tool]
    done = run_tool(main, "method=simclr", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("error: no recipe given: fkt-")
    if tool == "train":
        assert "recipes/pretrain/fashion_mnist: byol, dae, fkt_joint" in done.stderr
    else:
        assert "recipes/compare: cifar10_study_gpu, demo, fashion_mnist" in done.stderr


def test_tensorboard_and_wandb_offline_write_their_files(make_cfg, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    cfg = make_cfg("supervised", "++logger=tensorboard", "++wandb.enabled=true",
                   "++wandb.offline=true", "name=logged")
    train(cfg)
    run_dir = tmp_path / "logged"
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert list((run_dir / "wandb").glob("offline-run-*"))
    assert (run_dir / "metrics.csv").is_file()  # CSV stays on
    with pytest.raises(ConfigError, match="logger='mlflow' is unknown; use one of csv, "
                                          "tensorboard"):
        make_cfg("supervised", "++logger=mlflow")
