"""BYOL (Grill et al., 2020): an online network predicts an EMA target network's projections."""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import torch
from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules.heads import BYOLPredictionHead, BYOLProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.utils.scheduler import cosine_schedule
from omegaconf import DictConfig

from fkt_plugin.config import require_in_range, require_positive_int
from fkt_plugin.methods.base import BaseMethod, Batch
from fkt_plugin.methods.registry import METHODS


@METHODS.register("byol")
class BYOL(BaseMethod):
    """BYOL with lightly's heads, symmetric negative-cosine loss and cosine momentum schedule.

    method_kwargs:
        proj_hidden_dim (int): Projection head hidden width. Defaults to 4096.
        proj_output_dim (int): Projection dimension. Defaults to 256.
        pred_hidden_dim (int): Prediction head hidden width. Defaults to 4096.
        momentum_start (float): EMA momentum at the first step. Defaults to 0.99.
        momentum_end (float): EMA momentum at the last step. Defaults to 1.0.
        supervised_view (int): View that feeds the online classifier. Defaults to 0.
    """

    default_kwargs: ClassVar[dict[str, Any]] = {
        **BaseMethod.default_kwargs,
        "proj_hidden_dim": 4096,
        "proj_output_dim": 256,
        "pred_hidden_dim": 4096,
        "momentum_start": 0.99,
        "momentum_end": 1.0,
    }

    def __init__(self, cfg: DictConfig | dict[str, Any]) -> None:
        super().__init__(cfg)
        kwargs = self.cfg.method_kwargs
        self.projector = BYOLProjectionHead(self.features_dim, kwargs.proj_hidden_dim,
                                            kwargs.proj_output_dim)
        self.predictor = BYOLPredictionHead(kwargs.proj_output_dim, kwargs.pred_hidden_dim,
                                            kwargs.proj_output_dim)
        self.momentum_backbone = copy.deepcopy(self.backbone)
        self.momentum_projector = copy.deepcopy(self.projector)
        deactivate_requires_grad(self.momentum_backbone)
        deactivate_requires_grad(self.momentum_projector)
        self.criterion = NegativeCosineSimilarity()

    @staticmethod
    def check_kwargs(kwargs: DictConfig) -> None:
        BaseMethod.check_kwargs(kwargs)
        require_in_range(kwargs.momentum_start, "method_kwargs.momentum_start", 0.0, 1.0)
        require_in_range(kwargs.momentum_end, "method_kwargs.momentum_end",
                         kwargs.momentum_start, 1.0)
        require_positive_int(kwargs.proj_output_dim, "method_kwargs.proj_output_dim")

    @property
    def learnable_params(self) -> list[dict[str, Any]]:
        return [*super().learnable_params,
                {"name": "projector", "params": self.projector.parameters()},
                {"name": "predictor", "params": self.predictor.parameters()}]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = super().forward(x)
        z = self.projector(out["feats"])
        return out | {"z": z, "p": self.predictor(z)}

    def ssl_loss(self, feats: list[torch.Tensor], views: list[torch.Tensor],
                 targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        p0, p1 = self.predictor(self.projector(torch.cat(feats))).chunk(2)
        with torch.no_grad():
            t0, t1 = self.momentum_projector(
                self.momentum_backbone(torch.cat(views[:2]).contiguous(
                    memory_format=self.memory_format))).chunk(2)
        loss = 0.5 * (self.criterion(p0, t1) + self.criterion(p1, t0))
        return loss, {"train_neg_cos_sim": loss}

    def momentum(self) -> float:
        """The EMA momentum at the current step (cosine from momentum_start to momentum_end)."""
        kwargs = self.cfg.method_kwargs
        return cosine_schedule(self.global_step, max(int(self.trainer.estimated_stepping_batches),
                                                     1), kwargs.momentum_start,
                               kwargs.momentum_end)

    def on_train_batch_end(self, outputs: Any, batch: Batch, batch_idx: int) -> None:
        super().on_train_batch_end(outputs, batch, batch_idx)
        tau = self.momentum()
        update_momentum(self.backbone, self.momentum_backbone, m=tau)
        update_momentum(self.projector, self.momentum_projector, m=tau)
        self.log("tau", tau, on_epoch=True, on_step=False)
