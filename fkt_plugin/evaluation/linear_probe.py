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
from tqdm import tqdm

from fkt_plugin.data.dataset import ImageSplit
from fkt_plugin.evaluation.metrics import classification_metrics


@torch.no_grad()
def extract_features(backbone: nn.Module, split: ImageSplit, transform: nn.Module,
                     batch_size: int = 512, desc: str = "features") -> torch.Tensor:
    """``(N, D)`` features of a split's images, in eval mode, on the backbone's device."""
    device = next(backbone.parameters()).device
    was_training = backbone.training
    backbone.eval()
    transform = transform.to(device)
    chunks = [backbone(transform(split.images[i:i + batch_size].to(device))).float().cpu()
              for i in tqdm(range(0, len(split), batch_size), desc=desc, leave=False)]
    backbone.train(was_training)
    return torch.cat(chunks)


@dataclass
class LinearProbe:
    """A fitted probe: standardisation then a linear layer."""

    mean: torch.Tensor
    std: torch.Tensor
    linear: nn.Linear
    weight_decay: float
    val_acc1: float

    @torch.no_grad()
    def predict(self, feats: torch.Tensor) -> torch.Tensor:
        """Class indices ``(N,)`` of ``(N, D)`` features."""
        return self.linear((feats - self.mean) / self.std).argmax(1)


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
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    train_z, val_z = (train_x - mean) / std, (val_x - mean) / std
    best: LinearProbe | None = None
    for weight_decay in weight_decays:
        linear = _fit(train_z, train_y, num_classes, weight_decay, max_iter)
        with torch.no_grad():
            acc = (linear(val_z).argmax(1) == val_y).float().mean().item()
        if best is None or acc > best.val_acc1:
            best = LinearProbe(mean, std, linear, weight_decay, acc)
    assert best is not None, "weight_decays is empty"
    return best


def evaluate_probe(probe: LinearProbe, test_x: torch.Tensor, test_y: torch.Tensor,
                   num_classes: int) -> dict[str, float]:
    """Test metrics of a fitted probe."""
    return classification_metrics(test_y, probe.predict(test_x), num_classes)
