"""fkt_plugin.solo.register() against stand-ins of solo-learn's modules (solo-learn itself is
not installable from the package registries). The stand-in BaseMethod follows solo-learn's
contract: built from one cfg; forward → {"feats", "logits" (detached)}; training_step → dict of
per-large-crop lists plus the averaged online "loss"."""

from __future__ import annotations

import sys
import types

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from fkt_plugin.errors import ConfigError, MissingDependencyError
from fkt_plugin.solo import register
from tests.helpers import nt_xent


class StandInBaseMethod(nn.Module):
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


@pytest.fixture
def solo_modules(monkeypatch: pytest.MonkeyPatch) -> dict:
    methods: dict = {"simclr": object}
    solo = types.ModuleType("solo")
    solo_methods = types.ModuleType("solo.methods")
    solo_methods.METHODS = methods
    base = types.ModuleType("solo.methods.base")
    base.BaseMethod = StandInBaseMethod
    for name, module in (("solo", solo), ("solo.methods", solo_methods),
                         ("solo.methods.base", base),
                         ("lightning", types.SimpleNamespace(__version__="2.1.3"))):
        monkeypatch.setitem(sys.modules, name, module)
    return methods


def test_without_solo_learn_the_message_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "solo", None)
    with pytest.raises(MissingDependencyError, match="git clone https://github.com/vturrisi/"
                                                   "solo-learn.*PyPI's solo-learn 1.0.2"):
        register()


def test_an_old_argparse_style_solo_learn_is_refused(solo_modules, monkeypatch) -> None:
    class OldBaseMethod(nn.Module):
        def __init__(self, backbone, num_classes, **kwargs) -> None:
            super().__init__()

    monkeypatch.setattr(sys.modules["solo.methods.base"], "BaseMethod", OldBaseMethod)
    with pytest.raises(MissingDependencyError, match=r"too old.*found __init__\('self', "
                                                   r"'backbone', 'num_classes', 'kwargs'\)"):
        register()


def test_register_adds_fkt_joint_and_its_loss_is_the_joint_loss(solo_modules) -> None:
    cls = register()
    assert solo_modules["fkt_joint"] is cls and register() is cls
    cfg = OmegaConf.create({"data": {"num_large_crops": 3},
                            "method_kwargs": {"proj_hidden_dim": 16, "proj_output_dim": 4,
                                              "sup_weight": 2.0}})
    cfg = cls.add_and_assert_specific_cfg(cfg)
    assert cfg.method_kwargs.supervised_view == 2 and cfg.method_kwargs.temperature == 0.5
    model = cls(cfg)
    torch.manual_seed(0)
    views = [torch.randn(6, 12) for _ in range(3)]
    targets = torch.tensor([0, 1, -1, 2, -1, 1])
    loss = model.training_step((torch.arange(6), views, targets), 0)
    with torch.no_grad():
        feats = [model.backbone(v) for v in views]
        z0, z1 = model.projector(feats[0]), model.projector(feats[1])
        labelled = targets >= 0
        ce = F.cross_entropy(model.classifier(feats[2])[labelled], targets[labelled])
    assert loss.item() == pytest.approx(nt_xent(z0, z1, 0.5).item() + 2.0 * ce.item(), rel=1e-5)
    loss.backward()
    assert model.backbone[1].weight.grad.abs().sum() > 0
    bad = OmegaConf.create({"data": {"num_large_crops": 2}, "method_kwargs": {}})
    with pytest.raises(ConfigError, match="supervised_view=2 but the augmentations make 2"):
        cls.add_and_assert_specific_cfg(bad)
