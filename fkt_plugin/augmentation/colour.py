"""Colour operations on whole batches with torchvision's formulas, per-image parameters and no
host-device synchronisation: colour jitter (its four steps in a random order per image), grayscale
and solarization.

Images are ``(..., C, H, W)`` floats in [0, 1] and per-image parameters ``(..., k, 1, 1)``, so one
call serves a batch ``(B, C, H, W)`` or several views of it ``(V, B, C, H, W)``. "With probability
p" is a blend by ``torch.where`` over the whole batch, never a selection of images.
"""

from __future__ import annotations

import torch

# torchvision's rgb_to_grayscale weights (ITU-R 601-2 luma).
LUMA = (0.2989, 0.587, 0.114)
# Jitter factors in this order: brightness, contrast, saturation, hue.
BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)
# Hue offsets of the channel holding the maximum (red, green, blue), and of the output channels,
# in sixths of a turn.
HUE_FROM_MAX = (0.0, 2.0, 4.0)
HUE_TO_CHANNEL = (5.0, 3.0, 1.0)
# Floor of the chroma a hue is divided by: a grey pixel's differences are 0 whatever it is.
_EPS = 1e-12


def grayscale(x: torch.Tensor, luma: torch.Tensor) -> torch.Tensor:
    """``(..., 3, H, W)`` → ``(..., 1, H, W)`` luma (``luma``: ``(3, 1, 1)`` weights); grey input
    is returned as it is."""
    if x.shape[-3] == 1:
        return x
    return (x * luma).sum(-3, keepdim=True)


def shift_hue(x: torch.Tensor, shift: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Rotates the hue of RGB ``x`` by ``shift`` sixths of a turn (``(..., 1, 1, 1)``).

    torchvision's ``adjust_hue`` (RGB → HSV, shift, HSV → RGB) in closed form: the maximum and
    minimum channel stay, and each output channel is ``v - c * clamp(min(k, 4 - k), 0, 1)``.
    Equal to it up to float rounding.

    Args:
        offsets: ``(2, 3, 1, 1)``: :data:`HUE_FROM_MAX` and :data:`HUE_TO_CHANNEL`.
    """
    value, brightest = x.max(-3, keepdim=True)  # ties go to red, then green, as torchvision's
    chroma = value - x.amin(-3, keepdim=True)
    from_max, to_channel = offsets.unbind(0)
    # (g - b, b - r, r - g): the hue's offset from the brightest channel's, times the chroma.
    differences = x.roll(-1, -3) - x.roll(-2, -3)
    hue = (differences / chroma.clamp(min=_EPS) + from_max).gather(-3, brightest) + shift
    k = (hue + to_channel).remainder_(6)
    return value - chroma * torch.minimum(k, 4 - k).clamp_(0, 1)


def jitter_order(keys: torch.Tensor, hue: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Each image's order of the jitter steps, from uniform sort keys (a uniformly random
    permutation, as torchvision's ``randperm``).

    Args:
        keys: ``(..., 4, 1, 1)`` uniforms, one per step.
        hue: Whether the hue step runs.

    Returns:
        ``steps``: ``(..., 3, 1, 1)`` the brightness, contrast and saturation steps in the order
        they run; ``before_hue``: ``(..., 3, 1, 1)`` bool, whether each of them runs before hue
        (None without a hue step).
    """
    blends, hue_key = keys.split(HUE, -3)
    sorted_keys, steps = blends.sort(-3)
    return steps, (sorted_keys < hue_key) if hue else None


def blend_weights(factors: torch.Tensor, steps: torch.Tensor, before_hue: torch.Tensor | None
                  ) -> list[tuple[torch.Tensor, ...]]:
    """The jitter's blend steps as ``x * f + g * a + m * b``, clamped to [0, 1]: brightness
    (``a = b = 0``), saturation (``g``: the luma, ``a = 1 - f``), contrast (``m``: the mean luma,
    ``b = 1 - f``), in six slots: the three steps before the hue shift, then the three after it;
    a step runs in one of its two slots, and ``f = 1, a = b = 0`` in the other. Without a hue
    step (``before_hue`` None), three slots.

    Returns:
        Each slot's ``(f, a, b)``, each ``(..., 1, 1, 1)``, in slot order.
    """
    if before_hue is None:
        f = factors.gather(-3, steps)
    else:
        steps = torch.cat([steps, steps], -3)
        runs = torch.cat([before_hue, ~before_hue], -3)
        f = torch.where(runs, factors.gather(-3, steps), 1.0)
    rest = 1 - f
    a, b = rest * (steps == SATURATION), rest * (steps == CONTRAST)
    weights = torch.cat([f, a, b], -3).split(1, -3)
    slots = len(weights) // 3
    return [weights[i::slots] for i in range(slots)]


def colour_jitter(x: torch.Tensor, factors: torch.Tensor, keys: torch.Tensor,
                  apply: torch.Tensor, luma: torch.Tensor, offsets: torch.Tensor | None
                  ) -> torch.Tensor:
    """torchvision's ``RandomApply([ColorJitter(...)], p)`` with per-image factors and order.

    Args:
        x: ``(..., C, H, W)`` floats in [0, 1], C = 1 or 3.
        factors: ``(..., 4, 1, 1)``: brightness, contrast and saturation factors (1: unchanged)
            and the hue shift in sixths of a turn.
        keys: ``(..., 4, 1, 1)`` uniform sort keys of the steps (:func:`jitter_order`).
        apply: ``(..., 1, 1, 1)`` bool, which images are jittered.
        luma: ``(3, 1, 1)`` grayscale weights.
        offsets: :func:`shift_hue`'s offsets, or None to skip the hue step (grey images, or
            no hue jitter).
    """
    hue = offsets is not None and x.shape[-3] == 3
    steps, before_hue = jitter_order(keys, hue)
    weights = blend_weights(factors, steps, before_hue)
    out = x
    for slot, (f, a, b) in enumerate(weights):
        if hue and slot == HUE:
            assert offsets is not None
            out = shift_hue(out, factors[..., HUE:, :, :], offsets)
        grey = grayscale(out, luma)
        base = torch.addcmul(grey.mean((-2, -1), keepdim=True) * b, grey, a)
        out = torch.addcmul(base, out, f).clamp_(0, 1)
    return torch.where(apply, out, x)


def solarize(x: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
    """Inverts pixels at or above 0.5 in the images ``apply`` selects (``(..., 1, 1, 1)``
    bool), as torchvision's ``solarize`` with threshold 0.5 does."""
    return torch.where(apply & (x >= 0.5), 1 - x, x)
