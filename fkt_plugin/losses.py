"""The joint loss of Functional Knowledge Transfer as a standalone module, for a lightly user's
own training loop, and the masked cross-entropy that every method's classifier uses."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from lightly.loss import NTXentLoss
from torch import nn


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor,
                         weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy over the rows with a label (target >= 0); 0 (with a graph) if none has.

    Under DDP the mean runs over the labelled rows of the global batch: processes hold different
    numbers of labelled rows, and the mean of per-process means would weight a row by how few
    labels its process happened to get. The local sum is divided by the global count (times the
    world size, which DDP's gradient averaging divides back out).

    Shapes:
        logits: ``(B, C)``; targets: ``(B,)`` with -1 for unlabelled rows; returns a scalar.
    """
    labelled = targets >= 0
    # ignore_index instead of boolean indexing: no host-device synchronisation per step.
    losses = F.cross_entropy(logits, targets, weight=weight, ignore_index=-1, reduction="none")
    row_weights = labelled.to(logits.dtype)
    if weight is not None:
        row_weights = row_weights * weight[targets.clamp(min=0)]
    total = row_weights.sum().detach()
    world_size = 1
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        world_size = dist.get_world_size()
        dist.all_reduce(total)
    # Without any label the sum is 0 and the result 0, with the graph kept for a valid step.
    return losses.sum() * world_size / total.clamp(min=1e-12)  # losses are weighted already


class JointLossOutput(NamedTuple):
    """The weighted total and its two unweighted terms."""

    loss: torch.Tensor
    ssl: torch.Tensor
    supervised: torch.Tensor


class JointLoss(nn.Module):
    """``ssl_weight * NT-Xent(z0, z1) + sup_weight * CE(logits, targets)`` (Chhipa et al.,
    "Functional Knowledge Transfer with Self-supervised Representation Learning", ICIP 2023).

    The NT-Xent term (lightly's :class:`~lightly.loss.NTXentLoss`, Chen et al., 2020) uses every
    image; the cross-entropy term only the labelled ones (target -1 = unlabelled), and it trains
    the encoder too, unlike an online linear classifier on detached features.

    Args:
        temperature: NT-Xent temperature τ. Defaults to 0.5, the FKT paper's.
        ssl_weight: Weight of the NT-Xent term.
        sup_weight: Weight of the cross-entropy term.
        class_weights: Optional ``(C,)`` cross-entropy weights for imbalanced classes.
        gather_distributed: Gather negatives from all processes (DDP).

    Shapes:
        z0, z1: ``(B, D)`` projections of two views of the same images.
        logits: ``(B, C)`` classifier outputs (usually of a third, weakly augmented view).
        targets: ``(B,)`` class indices, -1 for unlabelled images.

    Examples:
        >>> criterion = JointLoss()
        >>> out = criterion(projector(backbone(v0)), projector(backbone(v1)),
        ...                 classifier(backbone(v2)), targets)
        >>> out.loss.backward()
    """

    def __init__(self, temperature: float = 0.5, ssl_weight: float = 1.0,
                 sup_weight: float = 1.0, class_weights: torch.Tensor | None = None,
                 gather_distributed: bool = False) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature={temperature!r} must be > 0")
        if ssl_weight < 0 or sup_weight < 0 or ssl_weight + sup_weight == 0:
            raise ValueError(f"ssl_weight={ssl_weight!r} and sup_weight={sup_weight!r} must be "
                             ">= 0 and not both 0")
        self.ssl_weight = ssl_weight
        self.sup_weight = sup_weight
        self.nt_xent = NTXentLoss(temperature=temperature, gather_distributed=gather_distributed)
        self.register_buffer("class_weights", class_weights)

    def forward(self, z0: torch.Tensor, z1: torch.Tensor, logits: torch.Tensor,
                targets: torch.Tensor) -> JointLossOutput:
        ssl = self.nt_xent(z0, z1)
        supervised = masked_cross_entropy(logits, targets, self.class_weights)
        return JointLossOutput(self.ssl_weight * ssl + self.sup_weight * supervised, ssl,
                               supervised)
