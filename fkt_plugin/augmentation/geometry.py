"""Random resized crops and horizontal flips of a whole batch: parameters drawn as torchvision
draws them, pixels resampled as torchvision's antialiased bilinear resize does, by two batched
matrix products and no per-image code.

Each output row (and column) of a crop is a weighted sum of input rows (columns): the weights are
torchvision's triangle filter, widened by the shrink factor when the crop is shrunk (its
antialias), restricted to the crop and normalised, with pixel centres at ``i + 0.5``. So one
``(out, length)`` matrix per image and axis resamples and flips every crop of a batch at once.
"""

from __future__ import annotations

import math

import torch

# torchvision's RandomResizedCrop aspect ratios and its number of tries.
RATIO = (3 / 4, 4 / 3)
TRIES = 10
# Uniform draws per image: TRIES areas, TRIES log-ratios, a position per axis, a flip per axis.
DRAWS = 2 * TRIES + 4


def fallback_box(height: int, width: int) -> tuple[int, int]:
    """torchvision's crop when all ``TRIES`` candidates fail: ``(w, h)`` of the central crop
    with the aspect ratio clamped to ``RATIO``."""
    in_ratio = width / height
    if in_ratio < RATIO[0]:
        return width, int(round(width / RATIO[0]))
    if in_ratio > RATIO[1]:
        return int(round(height * RATIO[1])), height
    return width, height


def crop_boxes(u_area: torch.Tensor, u_ratio: torch.Tensor, u_position: torch.Tensor,
               scale_low: torch.Tensor, scale_span: torch.Tensor, height: int, width: int,
               min_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """torchvision's ``RandomResizedCrop.get_params`` for every image at once.

    The ``TRIES`` candidates of its rejection loop are drawn together, its central crop appended
    as a last candidate that always fits, and the first candidate that fits is taken (``argmax``
    returns the first maximum).

    Args:
        u_area: ``(..., TRIES)`` uniforms in [0, 1): the candidates' areas.
        u_ratio: ``(..., TRIES)`` uniforms: their log aspect ratios.
        u_position: ``(..., 2)`` uniforms: the chosen crop's position.
        scale_low: Smallest crop area as a share of the image, broadcastable to ``(..., 1)``.
        scale_span: Largest minus smallest share, likewise.
        height: Image rows.
        width: Image columns.
        min_scale: The smallest of ``scale_low`` (known on the host): whether a candidate can
            round to an empty side, which torchvision rejects.

    Returns:
        ``start`` and ``size``, each ``(..., 2)`` whole pixels as floats, ``(x, y)`` order.
    """
    device = u_area.device
    # w = sqrt(area * ratio), h = sqrt(area / ratio): exp(log(area) / 2 +- log(ratio) / 2), with
    # log(ratio) uniform between the logs of RATIO.
    low, high = math.log(RATIO[0]), math.log(RATIO[1])
    half_log_pixels = 0.5 * math.log(height * width)
    offset = torch.linspace(half_log_pixels + low / 2, half_log_pixels - low / 2, 2, device=device)
    slope = torch.linspace((high - low) / 2, (low - high) / 2, 2, device=device)
    exponent = torch.addcmul(offset, u_ratio.unsqueeze(-1), slope)
    share = torch.addcmul(scale_low, scale_span, u_area)
    sizes = torch.add(exponent, share.log_().unsqueeze(-1), alpha=0.5).exp_().round_()
    fallback = torch.linspace(*fallback_box(height, width), 2, device=device)
    sizes = torch.cat([sizes, fallback.expand(*sizes.shape[:-2], 1, 2)], -2)
    # A crop fits if it leaves room to start at one position at least.
    limit = torch.linspace(width + 1, height + 1, 2, device=device)
    fits = (sizes < limit).all(-1)
    if round(math.sqrt(min_scale * height * width * RATIO[0])) < 1:
        fits = fits & (sizes >= 1).all(-1)
    first = fits.max(-1, keepdim=True).indices
    size = sizes.gather(-2, first.unsqueeze(-1).expand(*first.shape, 2)).squeeze(-2)
    # The fallback is centred: floor(u * room) with u just under 1/2 is (room - 1) // 2.
    position = torch.where(first == TRIES, 0.5 - 1e-6, u_position)
    return (position * (limit - size)).floor_(), size


def resampling_weights(start: torch.Tensor, size: torch.Tensor, flip: torch.Tensor, out: int,
                       length: int) -> torch.Tensor:
    """The matrices that resize each crop to ``out`` pixels per axis, flipped where asked.

    Entry ``[..., a, i, j]`` weighs input pixel ``j`` of axis ``a`` in output pixel ``i``: the
    triangle filter of torchvision's antialiased bilinear resize (support ``max(1, shrink)``),
    zero outside the crop, each row summing to 1.

    Args:
        start: ``(..., 2)`` first pixel of each crop, ``(x, y)``.
        size: ``(..., 2)`` crop side in pixels.
        flip: ``(..., 2)`` bool, reverse that axis of the output.
        out: Output side.
        length: Input side (the longer one if the image is not square).

    Returns:
        ``(..., 2, out, length)`` float weights.
    """
    device = size.device
    side = size.unsqueeze(-1)
    # Output pixel centres in the crop's pixels (exact when the crop is not resized), reversed
    # for a flip, clamped to the outer pixels' centres so that an enlarged crop's edge repeats
    # its last pixel, as torchvision's does.
    centre = torch.arange(0.5, out, device=device) * (side / out)
    centre = torch.where(flip.unsqueeze(-1), side - centre, centre)
    centre = torch.minimum(centre.clamp_(min=0.5), side - 0.5) + start.unsqueeze(-1)
    distance = torch.arange(0.5, length, device=device) - centre.unsqueeze(-1)
    if length <= out:
        # No crop is shrunk: bilinear weights, two taps inside the crop summing to 1.
        return (1 - distance.abs_()).clamp_(min=0)
    # The triangle's height does not matter: each row is normalised.
    support = (side / out).clamp_(min=1).unsqueeze(-1)
    weights = (support - distance.abs_()).clamp_(min=0)
    # A shrunk crop's filter reaches past its edge: those pixels are not the crop's.
    pixel = torch.arange(length, device=device)
    inside = (pixel >= start.unsqueeze(-1)) & (pixel < (start + size).unsqueeze(-1))
    weights = weights * inside.unsqueeze(-2)
    return weights / weights.sum(-1, keepdim=True)


def resample(images: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Crops, resizes and flips ``images`` by :func:`resampling_weights`.

    Args:
        images: ``(B, C, H, W)`` float.
        weights: ``(V, B, 2, out, max(H, W))``, one set per view.

    Returns:
        ``(V, B, C, out, out)``: ``rows @ image @ columns.T`` for every view and image, as two
        batched matrix products over the ``V * B`` crops.
    """
    views, batch, channels, height, width = weights.shape[0], *images.shape
    out = weights.shape[-2]
    columns, rows = weights.view(-1, 2, out, weights.shape[-1]).unbind(1)
    if height != width:
        columns, rows = columns[..., :width], rows[..., :height]
    # (V * B, H, C * W): each crop's rows mix image rows, all channels at once.
    stacked = images.transpose(1, 2).expand(views, -1, -1, -1, -1).reshape(-1, height,
                                                                          channels * width)
    mixed = torch.bmm(rows, stacked).view(-1, out * channels, width)
    resized = torch.bmm(mixed, columns.transpose(1, 2))
    return resized.view(views, batch, out, channels, out).transpose(2, 3).contiguous()
