"""Functional Knowledge Transfer (Chhipa et al., ICIP 2023): SimCLR and supervised, jointly.

One encoder is trained by ``ssl_weight * L_NT-Xent + sup_weight * L_CE`` in every step: NT-Xent
on two augmented views of every image, cross-entropy (through the encoder) on the labelled images
of a separately configurable, by default weakly augmented, view. The loss is
:class:`~fkt_plugin.losses.JointLoss`, the same module a lightly loop or solo-learn calls.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from omegaconf import DictConfig

from fkt_plugin.losses import JointLoss, check_joint_loss_args
from fkt_plugin.methods.registry import METHODS
from fkt_plugin.methods.simclr import SimCLR


@METHODS.register("fkt_joint")
class FKTJoint(SimCLR):
    """Joint SimCLR + supervised training of one encoder (heads from :class:`SimCLR`).

    method_kwargs (besides SimCLR's):
        ssl_weight (float): Weight of the NT-Xent term. Defaults to 1.
        sup_weight (float): Weight of the cross-entropy term. Defaults to 1.
        supervised_view (int): Index of the view the classifier sees. Defaults to 2, the view of
            a third (weak) pipeline after the two SimCLR views; 0 reuses a SimCLR view.
    """

    default_kwargs: ClassVar[dict[str, Any]] = {
        **SimCLR.default_kwargs,
        "ssl_weight": 1.0,
        "sup_weight": 1.0,
        "supervised_view": 2,
    }
    supervised_grad: ClassVar[bool] = True

    def make_criterion(self, kwargs: DictConfig) -> JointLoss:
        return JointLoss(temperature=kwargs.temperature, ssl_weight=kwargs.ssl_weight,
                         sup_weight=kwargs.sup_weight, class_weights=self.class_weights,
                         gather_distributed=True)

    @staticmethod
    def check_kwargs(kwargs: DictConfig) -> None:
        SimCLR.check_kwargs(kwargs)
        check_joint_loss_args(kwargs.temperature, kwargs.ssl_weight, kwargs.sup_weight,
                              prefix="method_kwargs.")

    def training_losses(self, feats: dict[int, torch.Tensor], views: list[torch.Tensor],
                        logits: torch.Tensor, targets: torch.Tensor
                        ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = self.criterion(*self.projections([feats[0], feats[1]]), logits, targets)
        return out.loss, {"train_class_loss": out.supervised, "train_nce_loss": out.ssl}
