"""Any timm model as the encoder: ``backbone.name=timm/<model>``."""

from __future__ import annotations

import sys

import pytest
import torch

from fkt_plugin.backbones import build_backbone
from fkt_plugin.errors import MissingDependencyError, UnknownNameError


@pytest.mark.parametrize(("name", "kwargs", "channels", "size"), [
    ("timm/resnet10t", {}, 1, 28),
    ("timm/convnext_atto", {}, 3, 32),
    ("timm/vit_tiny_patch16_224", {"img_size": 32, "patch_size": 4}, 3, 32),
])
def test_timm_models_give_pooled_features_of_their_own_width(name: str, kwargs: dict,
                                                             channels: int, size: int) -> None:
    import timm

    net, dim = build_backbone(name, in_channels=channels, **kwargs)
    reference = timm.create_model(name.removeprefix("timm/"), num_classes=0, in_chans=channels,
                                  **kwargs)
    assert dim == reference.num_features
    assert net(torch.randn(2, channels, size, size)).shape == (2, dim)


def test_unknown_timm_names_list_close_matches_and_timm_absent_is_named(monkeypatch) -> None:
    with pytest.raises(UnknownNameError, match="timm has no model 'resnet10' .*close matches: "
                                               ".*timm/resnet10t"):
        build_backbone("timm/resnet10", in_channels=3)
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(MissingDependencyError, match="needs timm: pip install timm"):
        build_backbone("timm/resnet10t", in_channels=3)


def test_a_timm_backbone_trains_in_fkt_train(make_cfg) -> None:
    from fkt_plugin.runner import train

    cfg = make_cfg("supervised", "backbone.name=timm/resnet10t", "~backbone.kwargs.width",
                   "name=timm-run")
    results = train(cfg)
    assert results["backbone"] == "timm/resnet10t" and 0 <= results["test"]["acc1"] <= 1
