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


@dataclass
class MLPProbe:
    """A fitted probe: standardisation then ``Linear → BatchNorm → ReLU → Linear``."""

    mean: torch.Tensor
    std: torch.Tensor
    mlp: nn.Sequential
    best_epoch: int
    val_acc1: float

    @torch.no_grad()
    def scores(self, feats: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, C)`` of ``(N, D)`` features."""
        return self.mlp.eval()((feats - self.mean) / self.std)


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
    mean, std = train_x.mean(0), train_x.std(0).nan_to_num(1.0).clamp_min(1e-6)
    train_z, val_z = (train_x - mean) / std, (val_x - mean) / std
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
            acc = (mlp.eval()(val_z).argmax(1) == val_y).float().mean().item()
        if acc > best_acc:
            best_state, best_epoch, best_acc = copy.deepcopy(mlp.state_dict()), epoch, acc
    mlp.load_state_dict(best_state)
    return MLPProbe(mean, std, mlp.eval(), best_epoch, best_acc)
