"""Losses: the masked cross-entropy every method's classifier uses, and the joint loss of
Functional Knowledge Transfer, the one implementation that the ``fkt_joint`` method, its
solo-learn class and a lightly user's own training loop all call."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from lightly.loss import NTXentLoss
from torch import nn

from fkt_plugin.config import require_positive
from fkt_plugin.errors import ConfigError


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


def check_joint_loss_args(temperature: float, ssl_weight: float, sup_weight: float,
                          prefix: str = "") -> None:
    """Validates the arguments of :class:`JointLoss` (``prefix`` names where they came from, e.g.
    ``method_kwargs.``).

    Raises:
        ConfigError: ``temperature`` is not > 0, a weight is negative, or both weights are 0.
    """
    require_positive(temperature, f"{prefix}temperature")
    for name, value in (("ssl_weight", ssl_weight), ("sup_weight", sup_weight)):
        if not value >= 0:
            raise ConfigError(f"{prefix}{name}={value!r} must be >= 0")
    if ssl_weight == 0 and sup_weight == 0:
        raise ConfigError(f"{prefix}ssl_weight and {prefix}sup_weight are both 0: nothing trains")


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
        gather_distributed: Gather negatives from all processes (DDP); the cross-entropy
            always averages over the labelled images of the global batch.

    Raises:
        ConfigError: (a ``ValueError``) an argument is out of range.

    Shapes:
        z0, z1: ``(B, D)`` projections of two views of the same images.
        logits: ``(B, C)`` classifier outputs (usually of a third, weakly augmented view).
        targets: ``(B,)`` class indices, -1 for unlabelled images.

    Examples:
        >>> import torch
        >>> criterion = JointLoss()
        >>> z0 = torch.randn(8, 16, requires_grad=True)  # projector(backbone(view0))
        >>> z1 = torch.randn(8, 16)                      # projector(backbone(view1))
        >>> logits = torch.randn(8, 10, requires_grad=True)  # classifier(backbone(view2))
        >>> targets = torch.tensor([3, -1, 0, -1, 9, 2, -1, 1])  # -1: unlabelled
        >>> out = criterion(z0, z1, logits, targets)
        >>> out.loss.backward()
        >>> bool(torch.isclose(out.loss, out.ssl + out.supervised))
        True
    """

    class_weights: torch.Tensor | None

    def __init__(self, temperature: float = 0.5, ssl_weight: float = 1.0,
                 sup_weight: float = 1.0, class_weights: torch.Tensor | None = None,
                 gather_distributed: bool = False) -> None:
        super().__init__()
        check_joint_loss_args(temperature, ssl_weight, sup_weight)
        self.ssl_weight = ssl_weight
        self.sup_weight = sup_weight
        self.nt_xent = NTXentLoss(temperature=temperature, gather_distributed=gather_distributed)
        # Not persistent: the weights come from the data, and a method's checkpoint keys stay
        # those of its own modules.
        self.register_buffer("class_weights", class_weights, persistent=False)

    def forward(self, z0: torch.Tensor, z1: torch.Tensor, logits: torch.Tensor,
                targets: torch.Tensor) -> JointLossOutput:
        ssl = self.nt_xent(z0, z1)
        supervised = masked_cross_entropy(logits, targets, self.class_weights)
        return JointLossOutput(self.ssl_weight * ssl + self.sup_weight * supervised, ssl,
                               supervised)


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(max(x, 0))`` with a zero gradient where ``x <= 0``, instead of the infinite one of
    ``sqrt`` at 0 (a pair of identical rows, or a constant batch)."""
    positive = x > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, x, torch.ones_like(x))),
                       torch.zeros_like(x))


def _double_centred_distances(x: torch.Tensor) -> torch.Tensor:
    """``(B, B)`` pairwise Euclidean distances of the rows of ``x``, double-centred (row, column
    and grand means removed)."""
    squared_norms = (x * x).sum(1)
    # One matrix product instead of a (B, B, D) difference tensor: O(B^2 + B D) memory.
    squared = squared_norms[:, None] + squared_norms[None, :] - 2.0 * (x @ x.T)
    distances = _safe_sqrt(squared)
    # The diagonal is 0 by definition; rounding in the product above leaves ~1e-3 there.
    distances = distances * (1 - torch.eye(len(x), dtype=x.dtype, device=x.device))
    return (distances - distances.mean(0, keepdim=True) - distances.mean(1, keepdim=True)
            + distances.mean())


def distance_correlation(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Empirical distance correlation dCor(x, y) of two batches (Székely, Rizzo and Bakirov,
    "Measuring and testing dependence by correlation of distances", Ann. Statist. 2007), the
    dependence measure of MV-MR (Kinakh et al., 2023).

    The biased (V-statistic) estimator, the one the ``dcor`` package's
    ``distance_correlation`` computes: with A and B the double-centred distance matrices of the
    rows of x and y, dCor = sqrt(mean(A B) / sqrt(mean(A A) mean(B B))). It lies in [0, 1], is
    1 for y = x, invariant to scaling, translation and rotation of either argument, and tends to
    0 for independent samples as B grows. It is differentiable, and 0 (with zero gradients, not
    NaN) when either batch is constant.

    Memory: O(B^2) for the two distance matrices plus O(B (D1 + D2)); no ``(B, B, D)`` tensor.
    Computed in float32 at least, also under mixed precision (autocast off inside).

    Shapes:
        x: ``(B, D1)``; y: ``(B, D2)`` (rows are samples; any other shape is flattened to
        ``(B, -1)``); returns a scalar.

    Raises:
        ConfigError: ``x`` and ``y`` hold different numbers of rows, or fewer than 4 (the
            estimate is meaningless on so few samples: raise ``optimizer.batch_size``).
    """
    if len(x) != len(y):
        raise ConfigError(f"distance correlation of batches of {len(x)} and {len(y)} rows: the "
                          "rows must be the same samples")
    if len(x) < 4:
        raise ConfigError(f"distance correlation needs a batch of at least 4 images, got "
                          f"{len(x)}; raise optimizer.batch_size")
    # Double centring subtracts means of distances from distances: in bf16 (8 significant bits)
    # the differences cancel, so the products run in float32 whatever autocast would choose.
    dtype = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)
    with torch.autocast(x.device.type, enabled=False):
        return _distance_correlation(x.flatten(1).to(dtype), y.flatten(1).to(dtype))


def _distance_correlation(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    a = _double_centred_distances(x)
    b = _double_centred_distances(y)
    covariance = (a * b).mean().clamp(min=0)
    variances = _safe_sqrt((a * a).mean() * (b * b).mean())
    # 0 / 0 for a constant batch: defined as 0, as the dcor package does.
    ratio = torch.where(variances > 0, covariance / torch.where(variances > 0, variances,
                                                                 torch.ones_like(variances)),
                        torch.zeros_like(variances))
    return _safe_sqrt(ratio)


def variance_hinge(z: torch.Tensor, margin: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """``mean_d ReLU(margin - std(z[:, d]))``: the variance term of VICReg (Bardes et al., ICLR
    2022) that MV-MR keeps to stop the embedding from collapsing to a constant.

    The mean over dimensions (VICReg's and MV-MR's official code's normalisation), so its weight
    does not depend on the projection width. ``eps`` keeps the gradient of the standard
    deviation finite for a constant dimension.

    Shapes:
        z: ``(B, D)``; returns a scalar.
    """
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(margin - std).mean()
