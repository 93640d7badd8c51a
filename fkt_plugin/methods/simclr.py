"""SimCLR (Chen et al., 2020): NT-Xent between projections of two views of every image."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules.heads import SimCLRProjectionHead
from omegaconf import DictConfig
from torch import nn

from fkt_plugin.config import require_positive
from fkt_plugin.methods.base import BaseMethod
from fkt_plugin.methods.registry import METHODS


@METHODS.register("simclr")
class SimCLR(BaseMethod):
    """SimCLR with lightly's projection head and NT-Xent loss.

    method_kwargs:
        proj_hidden_dim (int): Projection head hidden width. Defaults to 2048.
        proj_output_dim (int): Projection dimension. Defaults to 128.
        temperature (float): NT-Xent temperature τ. Defaults to 0.5 (lightly's CIFAR recipe).
        supervised_view (int): View that feeds the online classifier. Defaults to 0.
    """

    default_kwargs: ClassVar[dict[str, Any]] = {
        **BaseMethod.default_kwargs,
        "proj_hidden_dim": 2048,
        "proj_output_dim": 128,
        "temperature": 0.5,
    }

    def __init__(self, cfg: DictConfig | dict[str, Any]) -> None:
        super().__init__(cfg)
        kwargs = self.cfg.method_kwargs
        self.projector = SimCLRProjectionHead(self.features_dim, kwargs.proj_hidden_dim,
                                              kwargs.proj_output_dim)
        self.criterion = self.make_criterion(kwargs)

    def make_criterion(self, kwargs: DictConfig) -> nn.Module:
        """The loss module (NT-Xent here; the joint method's :class:`~fkt_plugin.losses.JointLoss`
        adds its cross-entropy)."""
        # NTXentLoss L2-normalises the projections; negatives are gathered across ranks in DDP.
        return NTXentLoss(temperature=kwargs.temperature, gather_distributed=True)

    @staticmethod
    def check_kwargs(kwargs: DictConfig) -> None:
        BaseMethod.check_kwargs(kwargs)
        require_positive(kwargs.temperature, "method_kwargs.temperature")

    @property
    def learnable_params(self) -> list[dict[str, Any]]:
        return [*super().learnable_params,
                {"name": "projector", "params": self.projector.parameters()}]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = super().forward(x)
        return out | {"z": self.projector(out["feats"])}

    def projections(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, proj_output_dim)`` projections of the two SimCLR views' features."""
        z0, z1 = self.projector(torch.cat(feats)).chunk(2)
        return z0, z1

    def ssl_loss(self, feats: list[torch.Tensor], views: list[torch.Tensor],
                 targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss = self.criterion(*self.projections(feats))
        return loss, {"train_nce_loss": loss}
