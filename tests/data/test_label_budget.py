"""Label accounting (data.val_labels): validation labels inside the budget, on top of it, or no
validation split; counts checked exactly against the class sizes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fkt_plugin.data.splits import carve_labels
from fkt_plugin.errors import ConfigError
from tests.helpers import make_cifar10, photo

# 12 images of each of 10 classes, in a shuffled order.
TARGETS = torch.from_numpy(np.random.default_rng(3).permutation(np.repeat(np.arange(10), 12)))


def test_budget_carves_validation_from_the_labelled_share() -> None:
    split = carve_labels(TARGETS, 0.25, 0.1, "budget", seed=0)
    # round(0.25 * 12) = 3 labels per class; validation: max(1, round(0.1 * 3)) = 1 of them.
    assert split.counts == {"train": 20, "val": 10, "total": 30}
    assert torch.equal(torch.bincount(TARGETS[split.val_index], minlength=10),
                       torch.ones(10, dtype=torch.int64))
    labelled = split.pool_targets[split.pool_targets >= 0]
    assert torch.equal(torch.bincount(labelled, minlength=10), torch.full((10,), 2))
    # The pool keeps every image but the validation ones, with their true labels where shown.
    assert len(split.pool_index) == 110 and not bool(torch.isin(split.pool_index,
                                                                split.val_index).any())
    shown = split.pool_targets >= 0
    assert torch.equal(split.pool_targets[shown], TARGETS[split.pool_index[shown]])
    # Same seed, same images (every arm of a sweep sees the same labels).
    again = carve_labels(TARGETS, 0.25, 0.1, "budget", seed=0)
    assert torch.equal(again.val_index, split.val_index)
    assert torch.equal(again.pool_targets, split.pool_targets)


def test_extra_and_none_count_as_documented() -> None:
    extra = carve_labels(TARGETS, 0.25, 0.1, "extra", seed=0)
    # Validation: round(0.1 * 12) = 1 per class with its label; pool: 11 per class, 3 labelled.
    assert extra.counts == {"train": 30, "val": 10, "total": 40}
    none = carve_labels(TARGETS, 0.25, 0.1, "none", seed=0)
    assert none.counts == {"train": 30, "val": 0, "total": 30}
    assert len(none.pool_index) == 120


def test_at_full_labels_budget_and_extra_draw_the_same_validation_split() -> None:
    budget = carve_labels(TARGETS, 1.0, 0.25, "budget", seed=4)
    extra = carve_labels(TARGETS, 1.0, 0.25, "extra", seed=4)
    assert torch.equal(budget.val_index, extra.val_index)
    assert torch.equal(budget.pool_targets, extra.pool_targets)


def test_a_budget_too_small_for_a_validation_split_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"data.label_fraction=0.1 labels 1 image\(s\) of class "
                                          r"\d .*data.val_labels=none \(no validation"):
        carve_labels(TARGETS, 0.1, 0.1, "budget", seed=0)
    with pytest.raises(ConfigError, match="data.val_fraction=0 leaves no validation split"):
        carve_labels(TARGETS, 0.5, 0.0, "budget", seed=0)


@pytest.fixture(scope="module")
def cifar120(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CIFAR-10-format dataset of 120 training images, 12 per class."""
    root = tmp_path_factory.mktemp("cifar120")
    names = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "camera", "moon",
             "page", "horse", "text")
    photos = [photo(names[i % 10], 32 + i // 10) [:32, :32] for i in range(120)]
    make_cifar10(root, photos, bytes_keys=True, per_batch=24)
    return root


def _train(root: Path, out: Path, *overrides: str) -> dict:
    from hydra import compose, initialize_config_dir

    from fkt_plugin.runner import train
    from tests.helpers import REPO

    with initialize_config_dir(config_dir=str(REPO / "recipes" / "pretrain" / "cifar10"),
                               version_base="1.3"):
        cfg = compose(config_name="supervised", overrides=[
            f"data.train_path={root}", f"checkpoint.dir={out}", "max_epochs=2",
            "optimizer.batch_size=8", "backbone.name=small_cnn", "~backbone.kwargs.small_stem",
            "+backbone.kwargs.width=4", "accelerator=cpu", "scheduler.warmup_epochs=0",
            "knn_eval.k=5", *overrides])
    return train(cfg)


def test_a_run_on_120_images_counts_its_labels(cifar120: Path, tmp_path: Path) -> None:
    results = _train(cifar120, tmp_path, "data.label_fraction=0.25", "data.val_labels=budget")
    assert results["labels"] == {"val_labels": "budget", "train": 20, "val": 10, "total": 30}
    assert results["selection"] == "best_val" and results["val"] is not None
    saved = json.loads((tmp_path / results["name"] / "results.json").read_text())
    assert saved["labels"]["total"] <= 30 and saved["labels"]["val"] > 0
    with pytest.raises(ConfigError, match="data.label_fraction=0.1 .*data.val_labels=none"):
        _train(cifar120, tmp_path / "b", "data.label_fraction=0.1")


def test_without_validation_the_last_epoch_is_scored(cifar120: Path, tmp_path: Path) -> None:
    results = _train(cifar120, tmp_path, "data.label_fraction=0.1", "data.val_labels=none")
    assert results["labels"] == {"val_labels": "none", "train": 10, "val": 0, "total": 10}
    assert results["selection"] == "last" and results["val"] is None
    assert results["selected_checkpoint"] is None and results["epochs"] == 2
    assert not (tmp_path / results["name"] / "checkpoints" / "best.ckpt").exists()
    with pytest.raises(ConfigError, match="selection=best_val needs a validation split"):
        _train(cifar120, tmp_path / "b", "data.val_labels=none", "selection=best_val")


def test_max_steps_ends_the_run_whatever_the_epochs(cifar120: Path, tmp_path: Path) -> None:
    results = _train(cifar120, tmp_path, "data.label_fraction=1.0", "max_steps=25")
    # 108 training images in batches of 8 (last one dropped): 13 steps an epoch.
    assert results["optimizer_steps"] == 25 and results["max_steps"] == 25


def test_warm_up_epochs_of_a_max_steps_run_are_its_own_epochs(cifar120: Path,
                                                              tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"scheduler.warmup_epochs=3 is 39 steps, longer than "
                                          r"the run \(max_steps=25\)"):
        _train(cifar120, tmp_path, "max_steps=25", "scheduler.warmup_epochs=3")


def test_validation_every_n_steps_spans_epochs(cifar120: Path, tmp_path: Path) -> None:
    from fkt_plugin.evaluation.plots import read_training_metric

    # 10% labels: 10 training labels, one step an epoch; validate every 4 steps.
    results = _train(cifar120, tmp_path, "data.label_fraction=0.25", "max_steps=12",
                     "val_every_n_steps=4")
    assert results["optimizer_steps"] == 12
    points = read_training_metric(tmp_path / results["name"] / "metrics.csv", "val_acc1")
    assert [step for step, _ in points] == [4, 8, 12]


def test_a_max_steps_run_that_ends_inside_an_epoch_is_validated_at_its_end(
        cifar120: Path, tmp_path: Path) -> None:
    """108 images, batches of 8: 13 steps an epoch; 20 steps end inside the second epoch.
    Validation every 10 steps (the divisor of 20 closest to 13) scores the last step, and the
    best checkpoint is the weights of the best validation."""
    import torch

    from fkt_plugin.evaluation.plots import read_training_metric

    results = _train(cifar120, tmp_path, "data.label_fraction=1.0", "max_steps=20")
    run = tmp_path / results["name"]
    points = read_training_metric(run / "metrics.csv", "val_acc1")
    assert [step for step, _ in points] == [10, 20]
    best = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    best_step = max(points, key=lambda p: p[1])[0]
    assert best["global_step"] == best_step
    assert results["val"]["acc1"] == pytest.approx(max(v for _, v in points), abs=1e-6)
