"""fkt_plugin.solo against the stand-in of solo-learn in tests/solo_standin (solo-learn itself is
not installable from the package registries; the stand-in holds its checks: two large crops
unless wmse/mae, the dataset list, devices as a list, the keys it reads). The real solo-learn
runs are in the issue notes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from fkt_plugin.data import load_dataset
from fkt_plugin.errors import ConfigError, MissingDependencyError
from fkt_plugin.solo import register
from tests.helpers import REPO, make_aptos, make_intel, nt_xent, photo

STANDIN = REPO / "tests" / "solo_standin"
CPU = ["accelerator=cpu", 'devices="1"', "strategy=auto", "sync_batchnorm=false", "precision=32",
       "optimizer.batch_size=4", "data.num_workers=0"]


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The stand-in importable in this process (and forgotten afterwards: registration patches
    its modules)."""
    monkeypatch.syspath_prepend(str(STANDIN))
    monkeypatch.setitem(sys.modules, "lightning", types.SimpleNamespace(__version__="2.1.3"))
    yield
    for name in [n for n in sys.modules if n == "solo" or n.startswith("solo.")]:
        del sys.modules[name]


class TinyBaseMethod(nn.Module):
    """solo-learn's BaseMethod contract on a 12-feature input, for exact loss checks."""

    def __init__(self, cfg) -> None:
        super().__init__()
        self.features_dim = 8
        self.backbone = nn.Sequential(nn.Flatten(), nn.Linear(12, self.features_dim))
        self.classifier = nn.Linear(self.features_dim, 3)
        self.num_large_crops = cfg.data.num_large_crops

    @staticmethod
    def add_and_assert_specific_cfg(cfg):
        return cfg

    @property
    def learnable_params(self):
        return [{"name": "backbone", "params": self.backbone.parameters()}]

    def forward(self, X):
        feats = self.backbone(X)
        return {"feats": feats, "logits": self.classifier(feats.detach())}

    def log_dict(self, *args, **kwargs) -> None:
        pass

    def training_step(self, batch, batch_idx):
        _, X, targets = batch
        outs = [self(x) for x in X[: self.num_large_crops]]
        outs = {k: [o[k] for o in outs] for k in outs[0]}
        outs["loss"] = sum(F.cross_entropy(lg, targets, ignore_index=-1)
                           for lg in outs["logits"]) / self.num_large_crops
        return outs


def test_without_solo_learn_the_message_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "solo", None)
    with pytest.raises(MissingDependencyError, match="git clone https://github.com/vturrisi/"
                                                   "solo-learn.*setuptools<82.*PyPI's "
                                                   "solo-learn 1.0.2"):
        register()


def test_an_old_argparse_style_solo_learn_is_refused(standin, monkeypatch) -> None:
    class OldBaseMethod(nn.Module):
        def __init__(self, backbone, num_classes, **kwargs) -> None:
            super().__init__()

    import solo.methods.base

    monkeypatch.setattr(solo.methods.base, "BaseMethod", OldBaseMethod)
    with pytest.raises(MissingDependencyError, match=r"too old.*found __init__\('self', "
                                                   r"'backbone', 'num_classes', 'kwargs'\)"):
        register()


def test_a_solo_learn_with_another_script_contract_is_named(standin, monkeypatch) -> None:
    import solo.data.classification_dataloader as classification

    monkeypatch.delattr(classification, "prepare_data")
    with pytest.raises(MissingDependencyError,
                       match=r"lacks solo.data.classification_dataloader.prepare_data"):
        register()


def test_unregistered_solo_learn_is_untouched_and_register_extends_it(standin) -> None:
    import solo.args.linear
    import solo.args.pretrain
    import solo.data.pretrain_dataloader as pretrain_data

    import fkt_plugin.solo  # noqa: F401 - importing must not patch solo-learn

    before = list(solo.args.pretrain._SUPPORTED_DATASETS)
    original = pretrain_data.prepare_datasets
    assert "intel" not in before and "intel" not in solo.args.linear._SUPPORTED_DATASETS
    register()
    register()  # idempotent
    for args in (solo.args.pretrain, solo.args.linear):
        assert [*before, "intel", "aptos"] == args._SUPPORTED_DATASETS
        assert args._N_CLASSES_PER_DATASET["intel"] == 6
        assert args._N_CLASSES_PER_DATASET["aptos"] == 5
    assert pretrain_data.prepare_datasets is not original
    assert pretrain_data.prepare_datasets.__wrapped__ is original


def test_register_adds_fkt_joint_and_its_loss_is_the_joint_loss(standin, monkeypatch) -> None:
    import solo.methods
    import solo.methods.base

    monkeypatch.setattr(solo.methods.base, "BaseMethod", TinyBaseMethod)
    cls = register()
    assert solo.methods.METHODS["fkt_joint"] is cls and register() is cls
    cfg = OmegaConf.create({"data": {"num_large_crops": 2},
                            "method_kwargs": {"proj_hidden_dim": 16, "proj_output_dim": 4,
                                              "sup_weight": 2.0}})
    cfg = cls.add_and_assert_specific_cfg(cfg)
    assert cfg.method_kwargs.supervised_view == 0 and cfg.method_kwargs.temperature == 0.5
    model = cls(cfg)
    torch.manual_seed(0)
    views = [torch.randn(6, 12) for _ in range(2)]
    targets = torch.tensor([0, 1, -1, 2, -1, 1])
    loss = model.training_step((torch.arange(6), views, targets), 0)
    with torch.no_grad():
        feats = [model.backbone(v) for v in views]
        z0, z1 = model.projector(feats[0]), model.projector(feats[1])
        labelled = targets >= 0
        ce = F.cross_entropy(model.classifier(feats[0])[labelled], targets[labelled])
    assert loss.item() == pytest.approx(nt_xent(z0, z1, 0.5).item() + 2.0 * ce.item(), rel=1e-5)
    loss.backward()
    assert model.backbone[1].weight.grad.abs().sum() > 0
    bad = OmegaConf.create({"data": {"num_large_crops": 2},
                            "method_kwargs": {"supervised_view": 2}})
    with pytest.raises(ConfigError, match="supervised_view=2 but the augmentations make 2 large "
                                          "crops; solo-learn's main_pretrain.py takes exactly two"):
        cls.add_and_assert_specific_cfg(bad)


def run_standin(script: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m fkt_plugin.solo tests/solo_standin/<script> ...`` from the project root, as
    the README writes it (relative --config-path)."""
    env = {**os.environ, "PYTHONPATH": str(STANDIN), "STANDIN_OUT": str(cwd),
           "FKT_DATA_HOME": str(cwd / "fkt_home")}
    return subprocess.run([sys.executable, "-m", "fkt_plugin.solo",
                           str(STANDIN.relative_to(REPO) / script), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=600, env=env)


def standin_record(done: subprocess.CompletedProcess[str], out: Path) -> dict:
    assert done.returncode == 0, done.stderr[-3000:]
    record = out / "standin_run.json"
    try:
        return json.loads(record.read_text())
    finally:
        record.unlink()


@pytest.mark.parametrize("dataset", ["intel", "aptos"])
def test_shipped_recipes_pretrain_and_evaluate_intel_and_aptos_in_solo_learns_scripts(
        dataset: str, tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    assert "--config-path recipes/solo/pretrain/intel --config-name fkt_joint" in " ".join(
        readme.replace("\\\n", " ").split())
    root = tmp_path / dataset
    if dataset == "intel":
        make_intel(root)
    else:
        make_aptos(root, [0, 1, 2, 3, 4] * 3)
    data = load_dataset(dataset, str(root), cache_dir=str(tmp_path / "cache"))
    done = run_standin("main_pretrain.py", [
        "--config-path", f"recipes/solo/pretrain/{dataset}", "--config-name", "fkt_joint",
        f"data.train_path={root}", *CPU], tmp_path)
    record = standin_record(done, tmp_path)
    size = 128 if dataset == "intel" else 224
    assert record["method"] == "fkt_joint" and record["dataset"] == dataset
    assert record["num_classes"] == (6 if dataset == "intel" else 5)
    assert record["crops"] == [[4, 3, size, size]] * 2
    assert record["pool"] == len(data.train)  # Intel: seg_pred joins, unlabelled
    assert record["stats"] == [[list(data.mean), list(data.std)]]
    assert {"train_nce_loss", "train_joint_class_loss"} <= set(record["logged"])
    assert set(record["val_targets"]) <= set(range(record["num_classes"]))

    done = run_standin("main_linear.py", [
        "--config-path", f"recipes/solo/linear/{dataset}", "--config-name", "fkt_joint",
        f"data.train_path={root}", "pretrained_feature_extractor=x.ckpt", *CPU], tmp_path)
    record = standin_record(done, tmp_path)
    assert record["train_size"] == int((data.train.targets >= 0).sum())
    assert record["val_size"] == len(data.test)
    assert record["val"] == [min(4, len(data.test)), 3, size, size]
    assert min(record["train_targets"]) >= 0


def test_the_custom_recipe_runs_on_an_image_folder(tmp_path: Path) -> None:
    from PIL import Image

    for split in ("train", "val"):
        for c, name in enumerate(("astronaut", "chelsea", "coffee")):
            (tmp_path / split / name).mkdir(parents=True)
            for k in range(2):
                Image.fromarray(photo(name, 64 + 8 * k + c)).save(tmp_path / split / name /
                                                                 f"{k}.png")
    done = run_standin("main_pretrain.py", [
        "--config-path", "recipes/solo/pretrain/custom", "--config-name", "fkt_joint",
        f"data.train_path={tmp_path / 'train'}", f"data.val_path={tmp_path / 'val'}", *CPU],
        tmp_path)
    record = standin_record(done, tmp_path)
    assert record["num_classes"] == 3 and record["crops"] == [[4, 3, 224, 224]] * 2


def test_a_third_large_crop_is_refused_as_solo_learn_refuses_it(tmp_path: Path) -> None:
    """The recipe design before this stand-in (two SimCLR views + a 32 px weak view) fails."""
    recipe = (REPO / "recipes" / "solo" / "pretrain" / "custom" / "fkt_joint.yaml").read_text()
    views = (REPO / "recipes" / "solo" / "pretrain" / "custom" / "augmentations" /
             "fkt_joint_views.yaml").read_text()
    weak = views.split("\n", 1)[1].replace("num_crops: 2", "num_crops: 1").replace(
        "crop_min_scale: 0.08", "crop_min_scale: 0.6")
    folder = tmp_path / "recipe"
    (folder / "augmentations").mkdir(parents=True)
    (folder / "wandb").mkdir()
    (folder / "wandb" / "private.yaml").write_text("enabled: False\n")
    (folder / "fkt_joint.yaml").write_text(recipe.replace("supervised_view: 0",
                                                          "supervised_view: 2"))
    (folder / "augmentations" / "fkt_joint_views.yaml").write_text(views + weak)
    for k in range(2):
        (tmp_path / "train" / f"c{k}").mkdir(parents=True)
    done = run_standin("main_pretrain.py", [
        "--config-path", str(folder), "--config-name", "fkt_joint",
        f"data.train_path={tmp_path / 'train'}", *CPU], tmp_path)
    assert done.returncode != 0
    assert "assert cfg.method in [\"wmse\", \"mae\"]" in done.stderr


def test_the_entry_point_names_a_missing_script(monkeypatch: pytest.MonkeyPatch) -> None:
    from fkt_plugin.solo.__main__ import main

    monkeypatch.setattr(sys, "argv", ["fkt_plugin.solo", "no/such/main_pretrain.py"])
    with pytest.raises(SystemExit, match="is not a file: give the path of solo-learn's "
                                         "main_pretrain.py"):
        main()
