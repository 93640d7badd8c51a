"""Knowledge transfer by clustering end to end: a teacher run → fkt-cluster → a student trained
on the cluster ids (k classes) → evaluated on the real labels; in fkt-compare as one sweep."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import fkt_plugin.cli.cluster
import fkt_plugin.cli.train
from fkt_plugin.data import load_dataset
from fkt_plugin.data import pseudo_labels as pseudo_label_files
from fkt_plugin.errors import ConfigError, DataFormatError
from fkt_plugin.evaluation.protocols import evaluate_run
from fkt_plugin.runner import train
from fkt_plugin.sweep import Sweep, run_sweep
from fkt_plugin.transfer import cluster
from tests.helpers import (
    IDX_NAMES,
    RECIPES,
    REPO,
    load_recipe,
    make_cifar10,
    photo,
    run_tool,
    tiny_overrides,
    write_idx,
)


@pytest.fixture(scope="module")
def teacher(fmnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SimCLR run on the Fashion-MNIST-format fixture."""
    out = tmp_path_factory.mktemp("teacher")
    train(load_recipe("simclr", [*tiny_overrides(fmnist_dir, out), "++name=teacher"]))
    return out / "teacher"


def test_cluster_then_a_student_sees_k_classes_and_is_evaluated_on_real_labels(
        teacher: Path, fmnist_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "clusters" / "k7.npz"
    report = cluster(OmegaConf.create({"run_dir": str(teacher), "k": 7, "out": str(out),
                                       "pca_dim": 8, "restarts": 2}))
    stored = pseudo_label_files.load(out)
    dataset = load_dataset("fashion_mnist", str(fmnist_dir))
    assert stored["train_labels"].shape == (len(dataset.train),)
    assert stored["test_labels"].shape == (len(dataset.test),)
    assert stored["centroids"].shape == (7, 8) and set(stored["train_labels"]) <= set(range(7))
    assert stored["teacher"]["backbone"] == "small_cnn" and stored["settings"]["k"] == 7
    assert report["sizes"]["empty"] == 0 and 0 <= report["agreement"]["test"]["nmi"] <= 1
    for suffix in ("-report.md", "-report.json", "-clusters.png"):
        assert Path(f"{out.with_suffix('')}{suffix}").is_file()

    student = train(load_recipe("supervised", [
        *tiny_overrides(fmnist_dir, tmp_path / "runs"), f"data.pseudo_labels={out}",
        "++name=student"]))
    saved = OmegaConf.load(tmp_path / "runs" / "student" / "config.yaml")
    assert saved.data.num_classes == 7
    assert len(student["test_confusion_matrix"]) == 7
    # Every training image carries a cluster id, so none is dropped as unlabelled.
    assert student["labelled_train_images"] == student["train_images"]
    probe = evaluate_run(OmegaConf.create({"run_dir": str(tmp_path / "runs" / "student"),
                                           "protocols": ["linear"], "label_fraction": 0.5,
                                           "plots": {"embedding": False}}))
    assert len(probe["linear"]["test_confusion_matrix"]) == 10  # the real classes


def test_a_pseudo_label_file_for_another_dataset_is_refused(teacher: Path, digits28,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "k3.npz"
    cluster(OmegaConf.create({"run_dir": str(teacher), "k": 3, "out": str(out)}))
    other = tmp_path / "other"
    other.mkdir()
    images, labels = digits28
    for split, part in (("train", slice(0, 1300)), ("test", slice(1300, None))):
        write_idx(other / IDX_NAMES[split][0], images[part])
        write_idx(other / IDX_NAMES[split][1], labels[part])
    cfg = load_recipe("supervised", [*tiny_overrides(other, tmp_path / "runs"),
                                     f"data.pseudo_labels={out}"])
    with pytest.raises(DataFormatError, match="pseudo-labels for another dataset .*"
                                              "train_images: 1400 in the file, 1300 here"):
        train(cfg)


def test_fkt_cluster_cli_writes_the_file_and_names_bad_values(teacher: Path,
                                                              tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "fkt_plugin.cli.cluster"]
    done = subprocess.run([*cli, f"run_dir={teacher}", "k=4", f"out={tmp_path / 'c.npz'}"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "fkt-cluster: fashion_mnist, k = 4" in done.stdout and (tmp_path / "c.npz").is_file()
    for args, message in [
        ([f"run_dir={tmp_path / 'nope'}", "k=4", "out=x.npz"], "config.yaml does not exist"),
        ([f"run_dir={teacher}", "k=1", "out=x.npz"], "k=1 must be at least 2"),
        ([f"run_dir={teacher}", "k=5000", "out=x.npz"], "k=5000 is larger than the 1400"),
        (["k=4", "out=x.npz"], "no teacher: give run_dir="),
    ]:
        bad = run_tool(fkt_plugin.cli.cluster.main, *args, cwd=tmp_path)
        assert bad.returncode == 2 and "error: " in bad.stderr, (args, bad.stderr)
        assert message in bad.stderr and not (tmp_path / "x.npz").exists()
        assert "teacher features" not in bad.stderr  # refused before the slow part
    help_text = run_tool(fkt_plugin.cli.cluster.main, "--help", cwd=tmp_path).stdout
    assert "run_dir=" in help_text and "assign_to" in help_text


def test_a_real_format_adapter_is_clustered_and_another_copy_assigned(tmp_path: Path) -> None:
    photos = [photo(name, 32) for name in ("astronaut", "chelsea", "coffee", "rocket",
                                           "hubble_deep_field")]
    make_cifar10(tmp_path / "a", photos * 4, bytes_keys=True, per_batch=20)
    # Another copy of the same images, in the Python-3 variant of the format.
    make_cifar10(tmp_path / "b", photos * 4, bytes_keys=False, per_batch=20)
    with initialize_config_dir(config_dir=str(REPO / "recipes" / "pretrain" / "cifar10"),
                               version_base="1.3"):
        cfg = compose(config_name="simclr", overrides=[
            f"data.train_path={tmp_path / 'a'}", f"checkpoint.dir={tmp_path / 'runs'}",
            "max_epochs=1", "optimizer.batch_size=16", "backbone.name=small_cnn",
            "~backbone.kwargs.small_stem", "+backbone.kwargs.width=4", "accelerator=cpu",
            "scheduler.warmup_epochs=0", "data.val_fraction=0.2", "++name=cifar-teacher"])
    train(cfg)
    report = cluster(OmegaConf.create({
        "run_dir": str(tmp_path / "runs" / "cifar-teacher"), "k": 5,
        "out": str(tmp_path / "a.npz"),
        "assign_to": {"train_path": str(tmp_path / "b"), "out": str(tmp_path / "b.npz")}}))
    assert report["dataset"] == "cifar10" and report["images"]["train"] == 100
    mine = pseudo_label_files.load(tmp_path / "a.npz")
    other = pseudo_label_files.load(tmp_path / "b.npz")
    assert other["dataset"]["train_images"] == 100 and other["settings"]["assigned_from"]
    assert np.array_equal(mine["centroids"], other["centroids"])
    # The same images through the same teacher and centroids get the same clusters.
    assert np.array_equal(mine["train_labels"], other["train_labels"])
    assert np.array_equal(mine["test_labels"], other["test_labels"])
    assert report["assigned"]["sizes"] == report["sizes"]


def test_a_compare_arm_trains_teacher_clusters_and_scores_the_student(fmnist_dir: Path,
                                                                      tmp_path: Path) -> None:
    tiny = ["optimizer.batch_size=64", "backbone.kwargs.width=4", "scheduler.warmup_epochs=0",
            "accelerator=cpu"]
    cfg = OmegaConf.create({
        "recipes": str(RECIPES), "out": str(tmp_path / "out"), "fractions": [0.2],
        "seeds": [0], "overrides": [f"data.train_path={fmnist_dir}", *tiny],
        "arms": [{"name": "simclr → linear", "recipe": "simclr", "epochs": 1,
                  "protocol": "linear"},
                 {"name": "student k=4 → linear", "recipe": "supervised", "epochs": 1,
                  "protocol": "linear", "teacher": "simclr → linear", "k": 4,
                  "cluster": {"restarts": 1}}]})
    sweep = Sweep(cfg)
    rows = run_sweep(sweep, log=lambda line: None)
    assert [r["arm"] for r in rows] == ["simclr → linear", "student k=4 → linear"]
    student_job = sweep.jobs[1]
    labels = sweep.pseudo_label_file(student_job)
    assert labels.is_file() and labels.parent.name == "clusters"
    saved = OmegaConf.load(sweep.run_dir(student_job) / "config.yaml")
    assert saved.data.num_classes == 4 and saved.data.label_fraction == 1.0
    assert json.loads(sweep.eval_file(student_job).read_text())["test"]["acc1"] >= 0


@pytest.mark.parametrize(("arm", "message"), [
    ({"teacher": "nobody", "k": 4, "protocol": "linear"}, "teacher='nobody' is not another arm"),
    ({"teacher": "t", "k": 1, "protocol": "linear"}, r"k=1 must be an int >= 2"),
    ({"teacher": "t", "k": 4}, "is a student .* give a protocol"),
    ({"k": 4, "protocol": "linear"}, "sets k or cluster without a teacher"),
    ({"teacher": "t", "k": 4, "protocol": "linear", "cluster": {"colour": 1}},
     "cluster has unknown keys colour"),
])
def test_malformed_student_arms_are_named(fmnist_dir: Path, tmp_path: Path, arm: dict,
                                          message: str) -> None:
    cfg = OmegaConf.create({
        "recipes": str(RECIPES), "out": str(tmp_path), "fractions": [0.2], "seeds": [0],
        "overrides": [f"data.train_path={fmnist_dir}"],
        "arms": [{"name": "t", "recipe": "simclr", "epochs": 1, "protocol": "linear"},
                 {"name": "s", "recipe": "supervised", "epochs": 1, **arm}]})
    with pytest.raises(ConfigError, match=message):
        Sweep(cfg)


@pytest.mark.parametrize("damage", ["truncated", "foreign"])
def test_a_damaged_pseudo_label_file_is_named_with_the_way_out(teacher: Path, tmp_path: Path,
                                                               damage: str) -> None:
    good = tmp_path / "k3.npz"
    cluster(OmegaConf.create({"run_dir": str(teacher), "k": 3, "out": str(good)}))
    bad = tmp_path / "bad.npz"
    if damage == "truncated":  # a copy that stopped half way
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    else:  # a file of another kind under the name
        bad.write_bytes(b"PK\x03\x04 not really a zip archive")
    done = run_tool(fkt_plugin.cli.train.main, "--config-path", "recipes/pretrain/fashion_mnist",
                    "--config-name", "supervised", f"data.pseudo_labels={bad}",
                    f"checkpoint.dir={tmp_path / 'runs'}", cwd=REPO)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: data.pseudo_labels='{bad}' is not a readable "
                                  "pseudo-label file")
    assert "fkt-cluster" in done.stderr and not (tmp_path / "runs").exists()
