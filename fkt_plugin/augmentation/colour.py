"""Colour operations on whole batches with torchvision's formulas, per-image parameters and no
host-device synchronisation: colour jitter (its four steps in a random order per image), grayscale
and solarization.

Images are ``(N, C, P)`` floats in [0, 1] (P pixels, flattened) and per-image parameters ``(N, k)``
or ``(N, 1, 1)``. torchvision's brightness, contrast, saturation and grayscale are each a
per-image linear map of the channel vector plus a per-image offset, so each runs as one batched
matrix product (``baddbmm``) over every image of a batch. "With probability p" is a blend
(``torch.where``, or the identity matrix), never a selection of images.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def jitter_ranges(brightness: float, contrast: float, saturation: float,
                  hue: float) -> tuple[list[float], list[float]]:
    """torchvision's ``ColorJitter`` factor ranges as ``(low, high)`` in :func:`colour_jitter`'s
    order: ``[max(0, 1 - s), 1 + s]`` per blend step, the hue shift in sixths of a turn."""
    low = [max(0.0, 1 - brightness), max(0.0, 1 - contrast), max(0.0, 1 - saturation), -6 * hue]
    high = [1 + brightness, 1 + contrast, 1 + saturation, 6 * hue]
    return low, high


def grey_matrix(channels: int) -> torch.Tensor:
    """``(C, C)``: the matrix that replaces each channel by the luma (every row ``LUMA``); a grey
    image's luma is itself (``[[1]]``)."""
    if channels == 1:
        return torch.ones(1, 1)
    return torch.tensor(LUMA).expand(3, 3).contiguous()


def hue_offsets() -> torch.Tensor:
    """``(2, 3, 1)``: :data:`HUE_FROM_MAX` and :data:`HUE_TO_CHANNEL`, :func:`shift_hue`'s
    constants."""
    return torch.tensor([HUE_FROM_MAX, HUE_TO_CHANNEL]).view(2, 3, 1)


def shift_hue(x: torch.Tensor, shift: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Rotates the hue of RGB ``x`` (``(N, 3, P)``) by ``shift`` sixths of a turn (``(N, 1,
    1)``).

    torchvision's ``adjust_hue`` (RGB → HSV, shift, HSV → RGB) in closed form: the maximum and
    minimum channel stay, and each output channel is ``v - c * clamp(min(k, 4 - k), 0, 1)``.
    Equal to it up to float rounding.

    Args:
        offsets: :func:`hue_offsets`.
    """
    value, brightest = x.max(-2, keepdim=True)  # ties go to red, then green, as torchvision's
    chroma = value - x.amin(-2, keepdim=True)
    from_max, to_channel = offsets.unbind(0)
    # (g - b, b - r, r - g): the hue's offset from the brightest channel's, times the chroma.
    differences = x.roll(-1, -2) - x.roll(-2, -2)
    hue = (differences / chroma.clamp(min=_EPS) + from_max).gather(-2, brightest) + shift
    k = (hue + to_channel).remainder_(6)
    return value - chroma * torch.minimum(k, 4 - k).clamp_(0, 1)


def jitter_order(keys: torch.Tensor, hue: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Each image's order of the jitter steps, from uniform sort keys (a uniformly random
    permutation, as torchvision's ``randperm``).

    Args:
        keys: ``(N, 4)`` uniforms, one per step.
        hue: Whether the hue step runs.

    Returns:
        ``steps``: ``(N, 3)`` the brightness, contrast and saturation steps in the order they
        run; ``before_hue``: ``(N, 3)`` bool, whether each of them runs before hue (None without
        a hue step).
    """
    blends, hue_key = keys.split(HUE, -1)
    sorted_keys, steps = blends.sort(-1)
    return steps, (sorted_keys < hue_key) if hue else None


def blend_matrices(factors: torch.Tensor, steps: torch.Tensor, before_hue: torch.Tensor | None,
                   grey: torch.Tensor, identity: torch.Tensor
                   ) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """The jitter's blend steps as ``clamp(mix @ x + offset @ mean(x), 0, 1)`` per slot.

    torchvision's steps blend with a target: brightness with 0 (``mix = f I``), saturation with
    the luma (``mix = f I + (1 - f) grey``), contrast with the mean luma (``mix = f I``,
    ``offset = (1 - f) grey``). They run in slots: the three steps before the hue shift, then
    the three after it; a step runs in one of its two slots and the identity in the other.
    Without a hue step (``before_hue`` None), three slots.

    Args:
        factors: ``(N, 4)`` jitter factors (:func:`colour_jitter`).
        steps: ``(N, 3)`` and ``before_hue``: from :func:`jitter_order`.
        grey: ``(C, C)`` :func:`grey_matrix`.
        identity: ``(C, C)`` identity.

    Returns:
        Each slot's ``mix`` and each slot's ``offset``, ``(N, C, C)`` each.
    """
    if before_hue is None:
        f = factors.gather(-1, steps)
    else:
        steps = torch.cat([steps, steps], -1)
        f = torch.where(torch.cat([before_hue, ~before_hue], -1), factors.gather(-1, steps), 1.0)
    f, steps = f.view(*f.shape, 1, 1), steps.view(*steps.shape, 1, 1)
    rest = 1 - f
    mix = torch.addcmul(f * identity, rest * (steps == SATURATION), grey)
    offset = rest * (steps == CONTRAST) * grey
    return mix.unbind(1), offset.unbind(1)


def colour_jitter(x: torch.Tensor, factors: torch.Tensor, keys: torch.Tensor,
                  apply: torch.Tensor, grey: torch.Tensor, identity: torch.Tensor,
                  offsets: torch.Tensor | None, select: bool = False) -> torch.Tensor:
    """torchvision's ``RandomApply([ColorJitter(...)], p)`` with per-image factors and order.

    Args:
        x: ``(N, C, P)`` floats in [0, 1], C = 1 or 3.
        factors: ``(N, 4)``: brightness, contrast and saturation factors (1: unchanged) and the
            hue shift in sixths of a turn.
        keys: ``(N, 4)`` uniform sort keys of the steps (:func:`jitter_order`).
        apply: ``(N, 1, 1)`` bool, which images are jittered.
        grey: ``(C, C)`` :func:`grey_matrix`.
        identity: ``(C, C)`` identity.
        offsets: :func:`hue_offsets`, or None to skip the hue step (no hue jitter).
        select: Run each slot on the images it changes only, read on the host (for a CPU,
            where that costs no synchronisation and saves half the slots' work); the same
            images as without.
    """
    hue = offsets is not None and x.shape[-2] == 3
    steps, before_hue = jitter_order(keys, hue)
    mixes, shifts = blend_matrices(factors, steps, before_hue, grey, identity)
    if select:
        return _jitter_selected(x, factors, steps, before_hue, apply, mixes, shifts, offsets)
    out = x
    for slot, (mix, shift) in enumerate(zip(mixes, shifts, strict=True)):
        if hue and slot == HUE:
            assert offsets is not None
            out = shift_hue(out, factors[:, HUE:, None], offsets)
        mean = torch.bmm(shift, out.mean(-1, keepdim=True))
        out = torch.baddbmm(mean, mix, out).clamp_(0, 1)
    return torch.where(apply, out, x)


def _jitter_selected(x: torch.Tensor, factors: torch.Tensor, steps: torch.Tensor,
                     before_hue: torch.Tensor | None, apply: torch.Tensor,
                     mixes: Sequence[torch.Tensor], shifts: Sequence[torch.Tensor],
                     offsets: torch.Tensor | None) -> torch.Tensor:
    """:func:`colour_jitter` with each slot (and the hue shift) run on the images it changes
    only: a step runs in one of its two slots, so half the slots' work is saved."""
    applied = apply.view(-1, 1)
    runs = applied.expand_as(steps) if before_hue is None else torch.cat(
        [before_hue & applied, ~before_hue & applied], -1)
    out = x.clone()
    for slot, (mix, shift) in enumerate(zip(mixes, shifts, strict=True)):
        if before_hue is not None and offsets is not None and slot == HUE:
            index = applied.view(-1).nonzero().squeeze(1)
            out[index] = shift_hue(out[index], factors[index, HUE:, None], offsets)
        index = runs[:, slot].nonzero().squeeze(1)
        part = out[index]
        mean = torch.bmm(shift[index], part.mean(-1, keepdim=True))
        out[index] = torch.baddbmm(mean, mix[index], part).clamp_(0, 1)
    return out


def grayscale(x: torch.Tensor, apply: torch.Tensor, grey: torch.Tensor,
              identity: torch.Tensor) -> torch.Tensor:
    """torchvision's ``RandomGrayscale``: the luma in every channel of the images ``apply``
    (``(N, 1, 1)`` bool) selects, on ``(N, 3, P)`` (``grey``, ``identity``: ``(3, 3)``)."""
    return torch.bmm(torch.where(apply, grey, identity), x)


def solarize(x: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
    """Inverts pixels at or above 0.5 in the images ``apply`` selects (``(N, 1, 1)`` bool), as
    torchvision's ``solarize`` with threshold 0.5 does."""
    return torch.where(apply & (x >= 0.5), 1 - x, x)
