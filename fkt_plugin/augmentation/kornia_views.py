"""The kornia backend: views made by kornia's augmentation containers on the batch's device.

Kept for comparison with the view engine (``data.augmentation_backend=kornia``): kornia draws
its parameters on the host and crops image by image, so this path dispatches thousands of ops
per batch and synchronises with the device (docs/results/performance/). Colour jitter is the
engine's (torchvision's formulas, per-image order); the committed studies ran this backend.
"""

from __future__ import annotations

from collections.abc import Sequence

import kornia.augmentation as K
import torch
from omegaconf import DictConfig
from torch import nn

from fkt_plugin.augmentation.colour import (
    colour_jitter,
    grey_matrix,
    hue_offsets,
    jitter_ranges,
)
from fkt_plugin.augmentation.engine import Normalize
from fkt_plugin.augmentation.schema import blur_kernel_size, count_views


class ColourJitter(nn.Module):
    """torchvision's ``RandomApply([ColorJitter(...)], p)`` as a module on ``(B, C, H, W)``
    floats: the engine's :func:`~fkt_plugin.augmentation.colour.colour_jitter` with its own
    per-image draws."""

    low: torch.Tensor
    span: torch.Tensor
    grey: torch.Tensor
    identity: torch.Tensor
    offsets: torch.Tensor

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0,
                 hue: float = 0.0, p: float = 1.0, channels: int = 3) -> None:
        super().__init__()
        low, high = jitter_ranges(brightness, contrast, saturation, hue)
        self.register_buffer("low", torch.tensor(low), False)
        self.register_buffer("span", torch.tensor(high) - self.low, False)
        self.register_buffer("grey", grey_matrix(channels), False)
        self.register_buffer("identity", torch.eye(channels), False)
        self.register_buffer("offsets", hue_offsets(), False)
        self.hue = hue > 0
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factors, keys, apply = torch.rand(x.shape[0], 9, device=x.device).split([4, 4, 1], 1)
        out = colour_jitter(x.flatten(2), torch.addcmul(self.low, self.span, factors), keys,
                            (apply < self.p).view(-1, 1, 1), self.grey, self.identity,
                            self.offsets if self.hue else None)
        return out.view(x.shape)


def build_view_transform(pipe: DictConfig, num_channels: int) -> nn.Sequential:
    """The batched ops of one pipeline (kornia's, and our colour jitter), in SimCLR's order, on
    floats in [0, 1].

    Grey images (``num_channels == 1``) skip saturation, hue and grayscale, which leave a grey
    image unchanged in torchvision as well.
    """
    size = (pipe.crop_size, pipe.crop_size)
    ops: list[nn.Module] = []
    # align_corners=False samples at pixel centres, as torchvision's resize does; kornia's
    # default (True) shifts and stretches every crop by up to half a pixel.
    if pipe.rrc.enabled:
        ops.append(K.RandomResizedCrop(size, scale=(pipe.rrc.crop_min_scale,
                                                    pipe.rrc.crop_max_scale),
                                       align_corners=False))
    else:
        ops.append(K.Resize(size, align_corners=False, antialias=True))
    if pipe.horizontal_flip.prob > 0:
        ops.append(K.RandomHorizontalFlip(p=pipe.horizontal_flip.prob))
    jitter = pipe.color_jitter
    if jitter.prob > 0:
        # torchvision's formulas (not kornia's ColorJiggle, whose brightness is additive), with
        # a closed-form hue shift; grey images skip saturation and hue.
        ops.append(ColourJitter(jitter.brightness, jitter.contrast, jitter.saturation,
                                jitter.hue, p=jitter.prob, channels=num_channels))
    if pipe.grayscale.prob > 0 and num_channels == 3:
        ops.append(K.RandomGrayscale(p=pipe.grayscale.prob))
    if pipe.gaussian_blur.prob > 0:
        ops.append(K.RandomGaussianBlur(blur_kernel_size(pipe.crop_size),
                                        (pipe.gaussian_blur.sigma_min,
                                         pipe.gaussian_blur.sigma_max),
                                        p=pipe.gaussian_blur.prob))
    if pipe.solarization.prob > 0:
        # thresholds=0, additions=0: invert pixels above exactly 0.5, as torchvision and PIL do.
        ops.append(K.RandomSolarize(thresholds=0.0, additions=0.0, p=pipe.solarization.prob))
    if pipe.equalization.prob > 0:
        ops.append(K.RandomEqualize(p=pipe.equalization.prob))
    return nn.Sequential(*ops)


class KorniaAugmentation(nn.Module):
    """Turns a uint8 batch into the list of normalised views that a method trains on.

    Args:
        pipelines: Parsed pipelines (:func:`parse_pipelines`).
        mean: Per-channel mean in [0, 1].
        std: Per-channel standard deviation in [0, 1].
        cpu_chunk_pixels: On a CPU, batches are augmented in chunks of about this many pixels
            per channel, so that each op's temporaries stay in cache (at 224 px, chunks of 20
            images ran 2.5x faster than the whole batch of 256 on 2 cores). GPUs take whole
            batches.

    Shapes:
        input: ``(B, C, H, W)`` uint8.
        output: ``sum(num_crops)`` tensors of ``(B, C, crop_size, crop_size)`` float32.
    """

    def __init__(self, pipelines: Sequence[DictConfig], mean: Sequence[float],
                 std: Sequence[float], cpu_chunk_pixels: int = 2**20) -> None:
        super().__init__()
        channels = len(mean)
        self.transforms = nn.ModuleList(build_view_transform(p, channels) for p in pipelines)
        self.num_crops = [int(p.num_crops) for p in pipelines]
        self.num_views = count_views(pipelines)
        self.normalize = Normalize(mean, std)
        self.cpu_chunk_pixels = cpu_chunk_pixels

    def _views(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = images.float().div_(255)
        return [self.normalize(transform(x))
                for transform, crops in zip(self.transforms, self.num_crops, strict=True)
                for _ in range(crops)]

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        if images.device.type != "cpu":
            return self._views(images)
        per_chunk = max(1, self.cpu_chunk_pixels // (images.shape[-2] * images.shape[-1]))
        if per_chunk >= len(images):
            return self._views(images)
        chunks = [self._views(part) for part in images.split(per_chunk)]
        return [torch.cat(parts) for parts in zip(*chunks, strict=True)]
