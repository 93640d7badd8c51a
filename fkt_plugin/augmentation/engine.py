"""The view engine: every view of a uint8 batch made on the batch's device by a fixed, small
number of batched kernels, with no host-device synchronisation.

Design, for someone adding an augmentation:

- **One draw.** Each group of views (the views of one crop size, across pipelines) draws all
  its random numbers in two ``torch.rand`` calls on the batch's device, from torch's global
  generator (a seed fixes the views): one for the crop geometry, one for the per-image
  parameters of the colour and filter steps.
- **One warp.** Crop, resize and flip of every view are two batched matrix products
  (:mod:`~fkt_plugin.augmentation.geometry`).
- **Blends, not subsets.** "With probability p" is ``torch.where`` over the whole batch; a
  pipeline's probabilities and strengths are per-view tensors, so views of different pipelines
  but one crop size (BYOL's asymmetric pair, fkt_joint's weak third view) run as one batch.
- **No sync.** Nothing reads a device value on the host: no ``.item()``, ``nonzero``, boolean
  indexing or Python loop over images.

A new colour or filter step is a function of the views as ``(N, C, P)`` pixels (``N = V * B``)
and ``(N, k)`` or ``(N, 1, 1)`` parameters, its probabilities and strengths per-view buffers of
:class:`ViewGroup`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from omegaconf import DictConfig
from torch import nn
from torch.nn import functional as F
from torchvision.transforms.v2 import functional as TF

from fkt_plugin.augmentation.blur import gaussian_blur, gaussian_exponents
from fkt_plugin.augmentation.colour import (
    colour_jitter,
    grayscale,
    grey_matrix,
    hue_offsets,
    jitter_ranges,
    solarize,
)
from fkt_plugin.augmentation.geometry import (
    DRAWS,
    TRIES,
    crop_boxes,
    resample,
    resampling_weights,
)
from fkt_plugin.augmentation.schema import blur_kernel_size, count_views, view_pipelines

# The colour and filter steps in the order they run, each with its probability's key; a group
# runs only the steps some view of it uses. Each image draws one uniform per step (whether it
# runs), plus the parameters of EXTRA_DRAWS.
STEPS = {"jitter": "color_jitter", "grayscale": "grayscale", "blur": "gaussian_blur",
         "solarize": "solarization", "equalize": "equalization"}
# Jitter: four factors and four sort keys of its steps' order; blur: sigma.
EXTRA_DRAWS = {"jitter": 8, "blur": 1}


def _per_view(values: Sequence[Sequence[float]], dims: int = 3) -> torch.Tensor:
    """``(V, 1, k, 1, ...)`` float tensor of per-view values, ``dims`` dimensions in all."""
    table = torch.tensor(values, dtype=torch.float32)
    return table.view(len(values), 1, table.shape[1], *(1,) * (dims - 3))


class ViewGroup(nn.Module):
    """The views of one crop size: their pipelines' probabilities and strengths as per-view
    buffers, and the code that makes all of them at once.

    Args:
        pipelines: One parsed pipeline per view (a pipeline repeats ``num_crops`` times).
        channels: Image channels (1: grey images skip saturation, hue and grayscale).
    """

    rrc: torch.Tensor
    scale_low: torch.Tensor
    scale_span: torch.Tensor
    flip: torch.Tensor
    probabilities: torch.Tensor
    factor_low: torch.Tensor
    factor_span: torch.Tensor
    sigma_low: torch.Tensor
    sigma_span: torch.Tensor
    grey: torch.Tensor
    identity: torch.Tensor
    hue_offsets: torch.Tensor
    blur_exponents: torch.Tensor

    def __init__(self, pipelines: Sequence[DictConfig], channels: int) -> None:
        super().__init__()
        self.size = int(pipelines[0].crop_size)
        self.select_on_cpu = True
        self.views = len(pipelines)
        colour = channels == 3
        rrc = [p.rrc for p in pipelines]
        self.crops = any(r.enabled for r in rrc)
        self.flips = any(p.horizontal_flip.prob > 0 for p in pipelines)
        self.mixed_crops = self.crops and not all(r.enabled for r in rrc)
        self.min_scale = min(float(r.crop_min_scale) for r in rrc)
        self.register_buffer("rrc", _per_view([[r.enabled] for r in rrc], 3).bool(), False)
        self.register_buffer("scale_low", _per_view([[r.crop_min_scale] for r in rrc], 3),
                             False)
        self.register_buffer("scale_span", _per_view(
            [[r.crop_max_scale - r.crop_min_scale] for r in rrc], 3), False)
        self.register_buffer("flip", _per_view(
            [[p.horizontal_flip.prob, 0.0] for p in pipelines], 3), False)
        jitter = [p.color_jitter for p in pipelines]
        self.steps = [step for step, key in STEPS.items()
                      if any(p[key].prob > 0 for p in pipelines)
                      and (colour or step != "grayscale")]
        self.register_buffer("probabilities", _per_view(
            [[p[STEPS[step]].prob for step in self.steps] for p in pipelines]), False)
        self.extra_draws = [EXTRA_DRAWS[step] for step in self.steps if step in EXTRA_DRAWS]
        self.hue = colour and any(j.prob > 0 and j.hue > 0 for j in jitter)
        ranges = [jitter_ranges(j.brightness, j.contrast, j.saturation, j.hue) for j in jitter]
        low, high = (_per_view([r[i] for r in ranges]) for i in (0, 1))
        self.register_buffer("factor_low", low, False)
        self.register_buffer("factor_span", high - low, False)
        self.register_buffer("sigma_low", _per_view(
            [[p.gaussian_blur.sigma_min] for p in pipelines]), False)
        self.register_buffer("sigma_span", _per_view(
            [[p.gaussian_blur.sigma_max - p.gaussian_blur.sigma_min] for p in pipelines]), False)
        self.register_buffer("grey", grey_matrix(channels), False)
        self.register_buffer("identity", torch.eye(channels), False)
        self.register_buffer("hue_offsets", hue_offsets(), False)
        self.register_buffer("blur_exponents",
                             gaussian_exponents(blur_kernel_size(self.size)), False)

    def _geometry(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` → ``(V, B, C, size, size)`` cropped, resized and flipped views."""
        height, width = x.shape[-2:]
        if not (self.crops or self.flips) and height == width == self.size:
            return x.expand(self.views, *x.shape)
        u = torch.rand(self.views, x.shape[0], DRAWS, device=x.device)
        u_area, u_ratio, u_position, u_flip = u.split([TRIES, TRIES, 2, 2], -1)
        if self.crops:
            start, size = crop_boxes(u_area, u_ratio, u_position, self.scale_low,
                                     self.scale_span, height, width, self.min_scale)
            if self.mixed_crops:
                whole = torch.linspace(width, height, 2, device=x.device)
                start, size = start * self.rrc, torch.where(self.rrc, size, whole)
        else:
            whole = torch.linspace(width, height, 2, device=x.device)
            start, size = torch.zeros_like(whole), whole.expand(*u.shape[:2], 2)
        weights = resampling_weights(start, size, u_flip < self.flip, self.size,
                                     max(height, width))
        return resample(x, weights)

    def _select(self, pixels: torch.Tensor) -> bool:
        """Whether steps may select images by a mask read on the host: on a CPU (no device to
        wait for), unless compiled (one graph) or :attr:`select_on_cpu` is off."""
        return (pixels.device.type == "cpu" and self.select_on_cpu
                and not torch.compiler.is_compiling())

    def _on_chosen(self, step: Callable[..., torch.Tensor], pixels: torch.Tensor,
                   chosen: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
        """``step(pixels, chosen, *params)`` for the images ``chosen`` (``(N, 1, 1)`` bool)
        selects, the others kept.

        On a GPU (or compiled) the step runs on every image and blends (no host read of
        ``chosen``); on a CPU, where reading it costs no synchronisation, only on the chosen
        images (the others' work saved), unless :attr:`select_on_cpu` is off. Both give the
        same images.
        """
        if not self._select(pixels):
            return step(pixels, chosen, *params)
        index = chosen.view(-1).nonzero().squeeze(1)
        if not len(index):
            return pixels
        picked = step(pixels[index], chosen[index], *(p[index] for p in params))
        return pixels.index_copy(0, index, picked)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` floats in [0, 1] → ``(V, B, C, size, size)`` views in [0, 1]."""
        views = self._geometry(x)
        if not self.steps:
            return views
        count, batch, channels, side = *views.shape[:3], self.size
        steps = len(self.steps)
        u = torch.rand(count, batch, steps + sum(self.extra_draws), device=x.device)
        runs, *extra = u.split([steps, *self.extra_draws], -1)
        chosen = dict(zip(self.steps, (runs < self.probabilities).view(-1, steps, 1).split(1, 1),
                          strict=True))
        draws = dict(zip([s for s in self.steps if s in EXTRA_DRAWS], extra, strict=True))
        # Colour steps see each view as (N, C, P): one channel vector per pixel.
        pixels = views.reshape(count * batch, channels, side * side)
        if "jitter" in chosen:
            factors, keys = draws["jitter"].split(4, -1)
            factors = torch.addcmul(self.factor_low, self.factor_span, factors)
            pixels = colour_jitter(pixels, factors.view(-1, 4), keys.reshape(-1, 4),
                                   chosen["jitter"], self.grey, self.identity,
                                   self.hue_offsets if self.hue else None,
                                   select=self._select(pixels))
        if "grayscale" in chosen:
            pixels = self._on_chosen(
                lambda x, apply: grayscale(x, apply, self.grey, self.identity), pixels,
                chosen["grayscale"])
        if "blur" in chosen:
            sigma = torch.addcmul(self.sigma_low, self.sigma_span, draws["blur"])
            pixels = self._on_chosen(
                lambda x, apply, s: gaussian_blur(x, s, apply, self.blur_exponents, side),
                pixels, chosen["blur"], sigma.view(-1, 1, 1))
        if "solarize" in chosen:
            pixels = self._on_chosen(solarize, pixels, chosen["solarize"])
        if "equalize" in chosen:
            planes = pixels.view(-1, channels, side, side)
            pixels = torch.where(chosen["equalize"], TF.equalize(planes).flatten(2), pixels)
        return pixels.view(count, batch, channels, side, side)


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel on ``(..., C, H, W)`` floats in [0, 1], as one
    ``x * (1 / std) - mean / std``."""

    scale: torch.Tensor
    shift: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        std_ = torch.tensor(std, dtype=torch.float64).view(-1, 1, 1)
        mean_ = torch.tensor(mean, dtype=torch.float64).view(-1, 1, 1)
        self.register_buffer("scale", (1 / std_).float(), persistent=False)
        self.register_buffer("shift", (-mean_ / std_).float(), persistent=False)

    def forward(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Normalises ``x``, into ``out`` if given (a view of a larger tensor: no copy)."""
        return torch.addcmul(self.shift, x, self.scale, out=out)


class DeviceAugmentation(nn.Module):
    """Turns a uint8 batch into the list of normalised views that a method trains on.

    Views of one crop size are made together (:class:`ViewGroup`), whatever pipelines they come
    from; the list keeps the pipelines' order (solo-learn's convention).

    Args:
        pipelines: Parsed pipelines (:func:`~fkt_plugin.augmentation.parse_pipelines`).
        mean: Per-channel mean in [0, 1].
        std: Per-channel standard deviation in [0, 1].
        cpu_chunk_pixels: On a CPU, batches are augmented in chunks of about this many pixels
            per channel (an image's side squared times the images), so that each op's
            temporaries stay in cache (2^18 ran 1.2-1.5x faster than 2^20 at 32 px on 2 cores).
            GPUs take whole batches.

    Shapes:
        input: ``(B, C, H, W)`` uint8.
        output: ``sum(num_crops)`` tensors of ``(B, C, crop_size, crop_size)`` float32.
    """

    def __init__(self, pipelines: Sequence[DictConfig], mean: Sequence[float],
                 std: Sequence[float], cpu_chunk_pixels: int = 2**18) -> None:
        super().__init__()
        per_view = view_pipelines(pipelines)
        sizes = sorted({int(p.crop_size) for p in per_view}, key=[p.crop_size for p in
                                                                   per_view].index)
        self.groups = nn.ModuleList(
            ViewGroup([p for p in per_view if p.crop_size == size], len(mean))
            for size in sizes)
        self.group_shapes = [(sum(p.crop_size == size for p in per_view), size)
                             for size in sizes]
        # Where each view sits among its group's output: (group, index in group).
        self.order = [(sizes.index(p.crop_size),
                       [q.crop_size for q in per_view[:i]].count(p.crop_size))
                      for i, p in enumerate(per_view)]
        self.num_views = count_views(pipelines)
        self.normalize = Normalize(mean, std)
        self.cpu_chunk_pixels = cpu_chunk_pixels

    def _group_views(self, images: torch.Tensor,
                     out: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """Each group's ``(V, B, C, size, size)`` normalised views, written into ``out`` (one
        tensor per group) if given."""
        # Float32 whatever autocast a caller runs under: resampling weights and colour
        # matrices lose visible precision in bf16.
        with torch.autocast(images.device.type, enabled=False):
            x = images.float().div_(255)
            return [self.normalize(group(x), out=None if out is None else out[i])
                    for i, group in enumerate(self.groups)]

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        per_chunk = max(1, self.cpu_chunk_pixels // (images.shape[-2] * images.shape[-1]))
        if images.device.type != "cpu" or per_chunk >= len(images):
            made = self._group_views(images)
        else:
            # Chunks write their views into the batch's tensors: no concatenation pass.
            made = [torch.empty(views, len(images), images.shape[1], size, size)
                    for views, size in self.group_shapes]
            for start in range(0, len(images), per_chunk):
                part = slice(start, start + per_chunk)
                self._group_views(images[part], [views[:, part] for views in made])
        return [made[group][index] for group, index in self.order]


class EvalTransform(nn.Module):
    """Evaluation input: resize to the training crop size (when it differs; torchvision's
    antialiased bilinear resize), then normalise.

    Shapes:
        input: ``(B, C, H, W)`` uint8.
        output: ``(B, C, size, size)`` float32.
    """

    def __init__(self, size: int, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.size = size
        self.normalize = Normalize(mean, std)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().div_(255)
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear",
                              align_corners=False, antialias=True)
        return self.normalize(x)
