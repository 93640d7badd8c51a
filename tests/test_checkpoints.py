"""Backbone export and loading: round trip, torchvision compatibility, and the key report."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import load_file

from fkt_plugin.backbones import build_backbone
from fkt_plugin.checkpoints import BackboneSource, export_backbone, load_backbone_weights
from fkt_plugin.errors import CheckpointError, ConfigError
from fkt_plugin.representations import build_representation


def lightning_checkpoint(path: Path, backbone: torch.nn.Module) -> Path:
    """What our (and solo-learn's) checkpoints hold: ``state_dict`` with ``backbone.*`` keys."""
    state = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    state["classifier.weight"] = torch.zeros(10, 4)
    torch.save({"state_dict": state, "epoch": 3}, path)
    return path


def test_export_then_load_gives_identical_features(tmp_path: Path) -> None:
    torch.manual_seed(0)
    trained, _ = build_backbone("resnet18", in_channels=3, small_stem=True)
    with torch.no_grad():  # make the BatchNorm statistics differ from a fresh network's
        for module in trained.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
    ckpt = lightning_checkpoint(tmp_path / "last.ckpt", trained)
    written = export_backbone(ckpt, tmp_path / "out" / "backbone.pt")
    assert [p.name for p in written] == ["backbone.pt", "backbone.safetensors"]
    x = torch.randn(2, 3, 32, 32)
    for path in written:
        fresh, _ = build_backbone("resnet18", in_channels=3, small_stem=True)
        report = load_backbone_weights(fresh, path)
        assert not report.missing and not report.unexpected
        assert torch.equal(fresh.eval()(x), trained.eval()(x))
    assert set(load_file(written[1])) == set(trained.state_dict())


def test_an_exported_resnet_loads_into_torchvision(tmp_path: Path) -> None:
    ours, _ = build_backbone("resnet18", in_channels=3)
    export_backbone(lightning_checkpoint(tmp_path / "c.ckpt", ours), tmp_path / "r18.pt")
    result = torchvision.models.resnet18().load_state_dict(torch.load(tmp_path / "r18.pt"),
                                                           strict=False)
    assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"]
    assert not result.unexpected_keys


def test_mismatched_checkpoints_get_a_key_report(tmp_path: Path) -> None:
    resnet, _ = build_backbone("resnet18", in_channels=3)
    state = resnet.state_dict()
    partial = {k: v for k, v in state.items() if not k.startswith("layer4")}
    partial["head.weight"] = torch.zeros(3)
    torch.save(partial, tmp_path / "partial.pt")
    report = load_backbone_weights(build_backbone("resnet18", in_channels=3)[0],
                                   tmp_path / "partial.pt")
    assert report.unexpected == ["head.weight"]
    assert report.missing and all(k.startswith("layer4") for k in report.missing)
    assert "missing from the file: layer4." in str(report)
    with pytest.raises(CheckpointError, match="saved from another backbone: conv1.weight: "
                                          r"\(64, 3, 7, 7\) in the file, \(64, 3, 3, 3\)"):
        load_backbone_weights(build_backbone("resnet18", in_channels=3, small_stem=True)[0],
                              tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match="no key of .* matches the backbone"):
        load_backbone_weights(build_backbone("small_cnn", in_channels=3)[0],
                              tmp_path / "partial.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="is not a checkpoint torch can read"):
        load_backbone_weights(resnet, tmp_path / "junk.pt")


def _small_run(folder: Path, width: int = 4) -> Path:
    """A run folder as fkt-train leaves it, with a small_cnn checkpoint of that width."""
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.yaml").write_text(
        f"name: {folder.name}\nbackbone:\n  name: small_cnn\n  kwargs:\n    width: {width}\n"
        "data:\n  dataset: fashion_mnist\n")
    backbone, _ = build_backbone("small_cnn", in_channels=1, width=width)
    return lightning_checkpoint(folder / "checkpoints" / "last.ckpt", backbone)


def test_a_backbone_source_reads_each_of_its_three_forms(tmp_path: Path) -> None:
    checkpoint = _small_run(tmp_path / "run")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("backbone:\n  name: small_cnn\n  kwargs:\n    width: 8\n")
    forms = [BackboneSource(run_dir=str(tmp_path / "run")),
             BackboneSource(recipe=str(recipe), recipe_overrides=("backbone.kwargs.width=4",),
                            checkpoint=str(checkpoint)),
             BackboneSource(backbone="small_cnn", backbone_kwargs=(("width", 4),),
                            checkpoint=str(checkpoint))]
    x = torch.randn(2, 1, 28, 28)
    features = [source.build(in_channels=1)(x) for source in forms]
    assert all(torch.equal(features[0], f) for f in features[1:])
    assert forms[0].run_cfg() is not None and forms[2].run_cfg() is None
    assert BackboneSource.from_settings({"run_dir": str(tmp_path / "run"),
                                         "checkpoint": None}) == forms[0]


def test_a_checkpoint_that_does_not_fill_the_backbone_is_one_error_everywhere(
        tmp_path: Path) -> None:
    checkpoint = _small_run(tmp_path / "run", width=4)
    state = torch.load(checkpoint, weights_only=True)
    dropped = next(k for k in state["state_dict"] if k.startswith("backbone."))
    del state["state_dict"][dropped]
    torch.save(state, checkpoint)
    message = f"checkpoint {checkpoint} does not fill the small_cnn backbone: .*missing"
    with pytest.raises(CheckpointError, match=message):
        BackboneSource(run_dir=str(tmp_path / "run")).build(in_channels=1)
    # The MV-MR teacher reads its backbone through the same source and error.
    with pytest.raises(CheckpointError, match=message):
        build_representation("teacher", run_dir=str(tmp_path / "run"), in_channels=1)
    with pytest.raises(ConfigError, match="no backbone given"):
        BackboneSource(run_dir=None).run_cfg()
    with pytest.raises(CheckpointError, match="with backbone=, checkpoint must be a file path"):
        BackboneSource(backbone="small_cnn", checkpoint="nowhere.ckpt").build(in_channels=1)
