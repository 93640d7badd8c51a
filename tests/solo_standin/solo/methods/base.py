"""Stand-in of solo.methods.base.BaseMethod: built from one cfg; forward gives features and
detached online logits; training_step gives per-large-crop lists and the averaged online loss."""

import torch.nn.functional as F
import torchvision
from torch import nn

from solo.args.common import require


class BaseMethod(nn.Module):
    _BACKBONES = {"resnet18": torchvision.models.resnet18}

    def __init__(self, cfg):
        super().__init__()
        cfg = self.add_and_assert_specific_cfg(cfg)
        backbone = self._BACKBONES[cfg.backbone.name]()
        self.features_dim = backbone.fc.in_features
        backbone.fc = nn.Identity()
        if cfg.data.dataset in ("cifar10", "cifar100"):
            backbone.conv1 = nn.Conv2d(3, 64, 3, 1, 2, bias=False)
            backbone.maxpool = nn.Identity()
        self.backbone = backbone
        self.classifier = nn.Linear(self.features_dim, cfg.data.num_classes)
        self.num_large_crops = cfg.data.num_large_crops
        self.num_crops = cfg.data.num_large_crops + cfg.data.num_small_crops
        self.logged = {}

    @staticmethod
    def add_and_assert_specific_cfg(cfg):
        require(cfg, "backbone.name", "optimizer.name", "scheduler.name", "method_kwargs")
        assert cfg.backbone.name in BaseMethod._BACKBONES
        assert cfg.optimizer.name in ("sgd", "lars", "adam", "adamw")
        return cfg

    @property
    def learnable_params(self):
        return [{"name": "backbone", "params": self.backbone.parameters()},
                {"name": "classifier", "params": self.classifier.parameters()}]

    def log_dict(self, values, **kwargs):
        self.logged.update({k: float(v) for k, v in values.items()})

    def forward(self, X):
        feats = self.backbone(X)
        return {"logits": self.classifier(feats.detach()), "feats": feats}

    def training_step(self, batch, batch_idx):
        _, X, targets = batch
        assert len(X) == self.num_crops
        outs = [self(x) for x in X[: self.num_large_crops]]
        outs = {k: [o[k] for o in outs] for k in outs[0]}
        outs["loss"] = sum(F.cross_entropy(lg, targets, ignore_index=-1)
                           for lg in outs["logits"]) / self.num_large_crops
        return outs
