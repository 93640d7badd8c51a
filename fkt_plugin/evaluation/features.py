"""Frozen features of a split's images, for the probes, kNN and the embedding plots."""

from __future__ import annotations

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
    chunks = [backbone(transform(split.images[i:i + batch_size].to(device))).float().cpu()
              for i in tqdm(range(0, len(split), batch_size), desc=desc, leave=False)]
    backbone.train(was_training)
    return torch.cat(chunks)
