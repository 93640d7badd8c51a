"""Functional Knowledge Transfer (Chhipa et al., ICIP 2023): SimCLR and supervised, jointly.

One encoder is trained by ``ssl_weight * L_NT-Xent + sup_weight * L_CE`` in every step: NT-Xent
on two augmented views of every image, cross-entropy (through the encoder) on the labelled images
of a separately configurable, by default weakly augmented, view.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from omegaconf import DictConfig

from fkt_plugin.config import ConfigError
from fkt_plugin.methods.registry import METHODS
from fkt_plugin.methods.simclr import SimCLR


@METHODS.register("fkt_joint")
class FKTJoint(SimCLR):
    """Joint SimCLR + supervised training of one encoder (heads and NT-Xent from :class:`SimCLR`).

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

    @staticmethod
    def check_kwargs(kwargs: DictConfig) -> None:
        SimCLR.check_kwargs(kwargs)
        for key in ("ssl_weight", "sup_weight"):
            if not kwargs[key] >= 0:
                raise ConfigError(f"method_kwargs.{key}={kwargs[key]!r} must be >= 0")
        if kwargs.ssl_weight == 0 and kwargs.sup_weight == 0:
            raise ConfigError("method_kwargs.ssl_weight and sup_weight are both 0: nothing trains")

    def combine_losses(self, ssl: torch.Tensor, supervised: torch.Tensor) -> torch.Tensor:
        kwargs = self.cfg.method_kwargs
        return kwargs.ssl_weight * ssl + kwargs.sup_weight * supervised
