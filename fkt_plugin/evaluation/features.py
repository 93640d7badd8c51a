"""Frozen features of a split's images, for the probes, kNN and the embedding plots, and their
standardisation for the probes."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from fkt_plugin.data.dataset import ImageSplit


@torch.no_grad()
def extract_features(backbone: nn.Module, split: ImageSplit, transform: nn.Module,
                     batch_size: int = 512, desc: str = "features") -> torch.Tensor:
    """``(N, D)`` float32 features of a split's images, in eval mode, returned on the CPU.

    Args:
        backbone: The encoder; it runs on the device its parameters are on.
        split: Images ``(N, C, H, W)`` uint8.
        transform: The evaluation transform (resize and normalisation) applied on that device.
        batch_size: Images per forward pass.
        desc: Progress-bar label.
    """
    device = next(backbone.parameters()).device
    was_training = backbone.training
    backbone.eval()
    transform = transform.to(device)
    chunks = [backbone(transform(split.read(slice(i, i + batch_size)).to(device))).float().cpu()
              for i in tqdm(range(0, len(split), batch_size), desc=desc, leave=False)]
    backbone.train(was_training)
    return torch.cat(chunks)


@dataclass(frozen=True)
class Standardiser:
    """Per-dimension standardisation with the statistics of the training features (a
    dimension that is constant there is left unscaled)."""

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def fit(cls, train_x: torch.Tensor) -> Standardiser:
        """Statistics of ``(N, D)`` training features."""
        return cls(train_x.mean(0), train_x.std(0).nan_to_num(1.0).clamp_min(1e-6))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``(M, D)`` features, standardised."""
        return (x - self.mean) / self.std
