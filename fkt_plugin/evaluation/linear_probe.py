"""Linear probe: a softmax classifier on frozen, standardised features.

The weight decay is chosen on the validation split; the test split is scored once, by the
selected probe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fkt_plugin.evaluation.features import Standardiser
from fkt_plugin.evaluation.metrics import topk_accuracy


@dataclass
class LinearProbe:
    """A fitted probe: standardisation then a linear layer."""

    standardise: Standardiser
    linear: nn.Linear
    weight_decay: float
    val_acc1: float

    @torch.no_grad()
    def scores(self, feats: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, C)`` of ``(N, D)`` features."""
        return self.linear(self.standardise(feats))


def _fit(x: torch.Tensor, y: torch.Tensor, num_classes: int, weight_decay: float,
         max_iter: int) -> nn.Linear:
    linear = nn.Linear(x.shape[1], num_classes)
    optimizer = torch.optim.LBFGS(linear.parameters(), lr=1.0, max_iter=max_iter,
                                  history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(linear(x), y) + weight_decay * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return linear


def fit_linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor,
                     val_y: torch.Tensor, num_classes: int,
                     weight_decays: Sequence[float] = (0.0, 1e-4, 1e-3, 1e-2),
                     max_iter: int = 200) -> LinearProbe:
    """Fits one full-batch L-BFGS probe per weight decay and keeps the best on validation.

    Args:
        train_x: ``(N, D)`` features of labelled training images; ``train_y``: ``(N,)`` labels.
        val_x: ``(M, D)`` validation features; ``val_y``: ``(M,)`` labels.
        num_classes: Number of classes.
        weight_decays: L2 penalties tried.
        max_iter: L-BFGS iterations per fit.
    """
    if not weight_decays:
        raise ValueError("weight_decays is empty: give at least one L2 penalty, e.g. [0.0]")
    standardise = Standardiser.fit(train_x)
    train_z, val_z = standardise(train_x), standardise(val_x)
    best: LinearProbe | None = None
    for weight_decay in weight_decays:
        linear = _fit(train_z, train_y, num_classes, float(weight_decay), max_iter)
        with torch.no_grad():
            acc = topk_accuracy(linear(val_z), val_y, 1).item()
        if best is None or acc > best.val_acc1:
            best = LinearProbe(standardise, linear, float(weight_decay), acc)
    assert best is not None
    return best
