"""Gaussian blur of a whole batch with a per-image sigma: one grouped, separable convolution."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def gaussian_exponents(kernel_size: int) -> torch.Tensor:
    """``(k,)``: ``-t^2 / 2`` over the taps ``t = -k//2 .. k//2`` (a kernel is
    ``exp(exponents / sigma^2)``, normalised)."""
    half = kernel_size // 2
    return torch.arange(-half, half + 1, dtype=torch.float32).square_().mul_(-0.5)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, apply: torch.Tensor,
                  exponents: torch.Tensor, side: int) -> torch.Tensor:
    """torchvision's ``RandomApply([GaussianBlur(kernel_size, sigma)], p)`` for every image.

    The kernel (``exp(-t^2 / 2 sigma^2)`` over ``t = -k//2 .. k//2``, normalised) is computed per
    image on the device, and an image left alone gets the identity kernel, so one convolution
    with reflected edges (torchvision's padding) serves the whole batch.

    Args:
        x: ``(N, C, P)`` float, ``P = side * side`` pixels.
        sigma: ``(N, 1, 1)`` per-image sigma.
        apply: ``(N, 1, 1)`` bool, which images are blurred.
        exponents: :func:`gaussian_exponents` of the kernel size.
        side: Image side.

    Returns:
        The blurred ``x``, same shape.
    """
    kernel_size = exponents.shape[0]
    half = kernel_size // 2
    # An image left alone gets a vanishing variance: its kernel is exactly the identity.
    variance = torch.where(apply, sigma.square(), 1e-30)
    kernel = torch.softmax(exponents / variance, -1)  # exp, normalised
    rows = kernel.expand(*x.shape[:2], kernel_size).reshape(-1, 1, 1, kernel_size)
    planes = x.reshape(1, -1, side, side)
    padded = F.pad(planes, (half, half, half, half), mode="reflect")
    out = F.conv2d(F.conv2d(padded, rows, groups=planes.shape[1]),
                   rows.view(-1, 1, kernel_size, 1), groups=planes.shape[1])
    return out.view(x.shape)
