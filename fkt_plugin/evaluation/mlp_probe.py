"""MLP probe: a two-layer classifier on frozen, standardised features.

Trained with AdamW and a cosine schedule on mini-batches; the epoch with the best validation
accuracy is kept, so the test split is scored once, by the selected probe.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fkt_plugin.evaluation.features import Standardiser
from fkt_plugin.evaluation.metrics import topk_accuracy


@dataclass
class MLPProbe:
    """A fitted probe: standardisation then ``Linear → BatchNorm → ReLU → Linear``."""

    standardise: Standardiser
    mlp: nn.Sequential
    best_epoch: int
    val_acc1: float

    @torch.no_grad()
    def scores(self, feats: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, C)`` of ``(N, D)`` features."""
        return self.mlp.eval()(self.standardise(feats))


def fit_mlp_probe(train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor,
                  val_y: torch.Tensor, num_classes: int, hidden_dim: int = 512,
                  epochs: int = 100, batch_size: int = 256, lr: float = 1e-3,
                  weight_decay: float = 1e-4, seed: int = 0) -> MLPProbe:
    """Trains the MLP probe and keeps the epoch with the best validation accuracy.

    Args:
        train_x: ``(N, D)`` features of labelled training images; ``train_y``: ``(N,)`` labels.
        val_x: ``(M, D)`` validation features; ``val_y``: ``(M,)`` labels.
        num_classes: Number of classes.
        hidden_dim: Width of the hidden layer.
        epochs: Passes over the training features.
        batch_size: Features per step.
        lr: Peak AdamW learning rate (cosine-annealed to 0).
        weight_decay: AdamW weight decay.
        seed: Seed of the initialisation and the shuffling.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    standardise = Standardiser.fit(train_x)
    train_z, val_z = standardise(train_x), standardise(val_x)
    mlp = nn.Sequential(nn.Linear(train_x.shape[1], hidden_dim), nn.BatchNorm1d(hidden_dim),
                        nn.ReLU(inplace=True), nn.Linear(hidden_dim, num_classes))
    optimizer = torch.optim.AdamW(mlp.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = max(1, len(train_z) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps_per_epoch)
    best_state, best_epoch, best_acc = copy.deepcopy(mlp.state_dict()), 0, -1.0
    for epoch in range(epochs):
        mlp.train()
        order = torch.randperm(len(train_z), generator=gen)
        # Full batches only (BatchNorm needs more than one sample), unless the set is smaller.
        for step in range(steps_per_epoch):
            index = order[step * batch_size:(step + 1) * batch_size]
            loss = F.cross_entropy(mlp(train_z[index]), train_y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        with torch.no_grad():
            acc = topk_accuracy(mlp.eval()(val_z), val_y, 1).item()
        if acc > best_acc:
            best_state, best_epoch, best_acc = copy.deepcopy(mlp.state_dict()), epoch, acc
    mlp.load_state_dict(best_state)
    return MLPProbe(standardise, mlp.eval(), best_epoch, best_acc)
