"""Gaussian blur of a whole batch with a per-image sigma: one grouped, separable convolution."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, apply: torch.Tensor,
                  kernel_size: int) -> torch.Tensor:
    """torchvision's ``RandomApply([GaussianBlur(kernel_size, sigma)], p)`` for every image.

    The kernel (``exp(-t^2 / 2 sigma^2)`` over ``t = -k//2 .. k//2``, normalised) is computed per
    image on the device, and an image left alone gets the identity kernel, so one convolution
    with reflected edges (torchvision's padding) serves the whole batch.

    Args:
        x: ``(..., C, H, W)`` float.
        sigma: ``(..., 1, 1, 1)`` per-image sigma.
        apply: ``(..., 1, 1, 1)`` bool, which images are blurred.
        kernel_size: Odd kernel side.

    Returns:
        The blurred ``x``, same shape.
    """
    half = kernel_size // 2
    taps = torch.linspace(-half, half, kernel_size, device=x.device)
    # An image left alone gets a vanishing sigma: its kernel is exactly the identity.
    sigma = torch.where(apply, sigma, 1e-30)
    kernel = torch.exp((taps / sigma).square_().mul_(-0.5))
    kernel = kernel / kernel.sum(-1, keepdim=True)
    *batch, height, width = x.shape
    planes = x.reshape(1, -1, height, width)
    rows = kernel.expand(*batch, 1, kernel_size).reshape(-1, 1, 1, kernel_size)
    padded = F.pad(planes, (half, half, half, half), mode="reflect")
    out = F.conv2d(F.conv2d(padded, rows, groups=planes.shape[1]),
                   rows.view(-1, 1, kernel_size, 1), groups=planes.shape[1])
    return out.view(x.shape)
