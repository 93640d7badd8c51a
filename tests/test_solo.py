"""solo-learn compatibility: its recipe files run with fkt-train, unused keys are reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, make_cifar10, photo

SOLO_RECIPE = """\
defaults:
  - _self_
  - augmentations: symmetric.yaml
  - wandb: private.yaml
  - override hydra/hydra_logging: disabled
  - override hydra/job_logging: disabled

hydra:
  output_subdir: null
  run:
    dir: .

name: "solo-format-simclr"
method: "simclr"
backbone:
  name: "resnet18"
method_kwargs:
  proj_hidden_dim: 64
  proj_output_dim: 32
  temperature: 0.2
data:
  dataset: cifar10
  train_path: "./datasets"
  val_path: "./datasets"
  format: "image_folder"
  num_workers: 0
optimizer:
  name: "lars"
  batch_size: 16
  lr: 0.3
  classifier_lr: 0.1
  weight_decay: 1e-4
  kwargs:
    clip_lr: True
    eta: 0.02
    exclude_bias_n_norm: True
scheduler:
  name: "warmup_cosine"
checkpoint:
  enabled: True
  dir: "trained_models"
  frequency: 1
auto_resume:
  enabled: True

max_epochs: 1
devices: [0]
sync_batchnorm: True
accelerator: "gpu"
strategy: "ddp"
precision: 16-mixed
"""

SOLO_AUGMENTATION = """\
- rrc:
    enabled: True
    crop_min_scale: 0.08
    crop_max_scale: 1.0
  color_jitter:
    prob: 0.8
    brightness: 0.4
    contrast: 0.4
    saturation: 0.2
    hue: 0.1
  grayscale:
    prob: 0.2
  gaussian_blur:
    prob: 0.0
  solarization:
    prob: 0.0
  equalization:
    prob: 0.0
  horizontal_flip:
    prob: 0.5
  crop_size: 32
  num_crops: 2
"""


def test_a_solo_learn_recipe_runs_with_fkt_train(tmp_path: Path) -> None:
    recipes = tmp_path / "scripts" / "pretrain" / "cifar"
    (recipes / "augmentations").mkdir(parents=True)
    (recipes / "wandb").mkdir()
    (recipes / "simclr.yaml").write_text(SOLO_RECIPE)
    (recipes / "augmentations" / "symmetric.yaml").write_text(SOLO_AUGMENTATION)
    (recipes / "wandb" / "private.yaml").write_text("enabled: False\nentity: null\n"
                                                    "project: fkt\noffline: True\n")
    photos = [photo(name, 32) for name in ("astronaut", "chelsea", "coffee", "rocket")]
    make_cifar10(tmp_path / "datasets", photos * 5, bytes_keys=True, per_batch=20)
    done = subprocess.run(
        [sys.executable, "-m", "fkt_plugin.cli.train", "--config-path", str(recipes),
         "--config-name", "simclr", "accelerator=cpu", "devices=1", "precision=32-true",
         "strategy=auto", "sync_batchnorm=false",
         "++data.fraction=0.5", f"checkpoint.dir={tmp_path / 'runs'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    unused = done.stderr.split("config keys not used by fkt-train: ")[1].splitlines()[0]
    assert {"data.format", "data.fraction"} <= set(unused.split(", "))
    # solo-learn's wandb block is read now (wandb.enabled=true logs to Weights & Biases).
    assert not any(key.startswith("wandb") for key in unused.split(", "))
    assert "strategy" not in unused and "sync_batchnorm" not in unused
    assert "clip_lr=True, exclude_bias_n_norm=True: solo-learn's LARS options" in done.stderr
    run = tmp_path / "runs" / "solo-format-simclr"
    results = json.loads((run / "results.json").read_text())
    assert results["method"] == "simclr" and results["backbone"] == "resnet18"
    saved = (run / "config.yaml").read_text()
    assert "small_stem: true" in saved and "trust_coefficient: 0.02" in saved


@pytest.mark.parametrize("folder", ["cifar", "stl10", "intel", "aptos"])
def test_the_solo_side_recipes_make_two_large_crops_and_fkt_train_reads_them(folder: str) -> None:
    """solo-learn's main_pretrain.py admits two large crops: the shipped recipes make exactly
    that, and fkt-train validates the same recipe to the same objective (CE on view 0)."""
    from hydra import compose, initialize_config_dir

    from fkt_plugin.args.run import validate_run_cfg

    with initialize_config_dir(config_dir=str(REPO / "recipes" / "solo" / "pretrain" / folder),
                               version_base="1.3"):
        cfg = compose(config_name="fkt_joint", overrides=["accelerator=cpu", "devices=1"])
    assert cfg.method == "fkt_joint" and len(cfg.augmentations) == 1
    assert cfg.augmentations[0].num_crops == 2
    assert cfg.wandb.enabled is False
    validated = validate_run_cfg(cfg)
    assert validated.method_kwargs.supervised_view == 0
