"""Every documented key can be set as documented on every shipped recipe (the recipes extend
the typed schemas of :mod:`fkt_plugin.args.schemas`), and values are checked by type."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml

import fkt_plugin.cli.compare
import fkt_plugin.cli.train
from fkt_plugin.args.run import RUN_DEFAULTS
from fkt_plugin.backbones import BACKBONES
from fkt_plugin.recipes import PRETRAIN_RECIPES
from tests.helpers import REPO, run_tool

SHIPPED = sorted(p.relative_to(PRETRAIN_RECIPES) for p in PRETRAIN_RECIPES.rglob("*.yaml")
                 if p.parent.name != "augmentations")
# The keys the README and fkt-train --help document, with values to set them to.
DOCUMENTED = ["logger=tensorboard", "wandb.enabled=true", "wandb.offline=true",
              "data.pseudo_labels=clusters/k100.npz", "data.batch_sampler=guided",
              "selection=last", "performance.compile=true", "data.device_resident=false",
              "max_steps=40", "val_every_n_steps=10", "data.labelled_share=0.5",
              "pretrained_feature_extractor=other/last.ckpt"]


def test_every_shipped_pretrain_recipe_is_found() -> None:
    assert len(SHIPPED) >= 60


@pytest.mark.parametrize("recipe", SHIPPED, ids=str)
def test_documented_keys_compose_as_written_on_every_recipe(recipe: Path) -> None:
    done = run_tool(fkt_plugin.cli.train.main, "--config-path",
                    f"recipes/pretrain/{recipe.parent}", "--config-name", recipe.stem,
                    *DOCUMENTED, "--cfg", "job", cwd=REPO)
    assert done.returncode == 0, done.stderr
    cfg = yaml.safe_load(done.stdout)
    assert cfg["logger"] == "tensorboard" and cfg["selection"] == "last"
    assert cfg["wandb"]["enabled"] is True and cfg["wandb"]["offline"] is True
    assert cfg["data"]["pseudo_labels"] == "clusters/k100.npz"
    assert cfg["data"]["batch_sampler"] == "guided"
    # Every key of the run schema is in the composed recipe, so that each can be set.
    missing = [f"{block}.{key}" for block, keys in RUN_DEFAULTS.items() if isinstance(keys, dict)
               for key in keys if block not in ("method_kwargs",) and key not in cfg[block]]
    assert missing == []


@pytest.mark.parametrize(("override", "key"), [
    ("optimizer.lr=abc", "optimizer.lr"), ("max_epochs=2.5", "max_epochs"),
    ("data.label_fraction=lots", "data.label_fraction"),
    ("checkpoint.enabled=maybe", "checkpoint.enabled")])
def test_a_value_of_the_wrong_type_is_refused_naming_the_key(override: str, key: str) -> None:
    done = run_tool(fkt_plugin.cli.train.main, "--config-path", "recipes/pretrain/cifar10",
                    "--config-name", "simclr", override, "--cfg", "job", cwd=REPO)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {key}=")


@pytest.mark.parametrize("recipe", sorted(p.stem for p in (REPO / "recipes" / "compare").glob(
    "*.yaml")))
def test_every_compare_recipe_takes_its_documented_keys(recipe: str) -> None:
    done = run_tool(fkt_plugin.cli.compare.main, "--config-path", "recipes/compare",
                    "--config-name", recipe, "selection=last", "val_labels=extra",
                    "processes=2", "summary_only=true", "--cfg", "job", cwd=REPO)
    assert done.returncode == 0, done.stderr
    cfg = yaml.safe_load(done.stdout)
    assert (cfg["selection"], cfg["val_labels"], cfg["processes"]) == ("last", "extra", 2)


def test_a_bad_backbone_kwargs_key_names_it_and_the_accepted_ones(tmp_path: Path) -> None:
    done = run_tool(fkt_plugin.cli.train.main, "--config-path", "recipes/pretrain/fashion_mnist",
                    "--config-name", "simclr", "+backbone.kwargs.widht=8",
                    f"checkpoint.dir={tmp_path}", cwd=REPO)
    assert done.returncode == 2
    # The accepted keys are read from the builder itself, not from a list kept beside it.
    accepted = [p for p in inspect.signature(BACKBONES["small_cnn"]).parameters
                if p != "in_channels"]
    assert done.stderr.strip() == (f"error: backbone.kwargs.widht is not an argument of backbone "
                                   f"'small_cnn'; it takes: {', '.join(accepted)}")
    assert not any(tmp_path.iterdir())
