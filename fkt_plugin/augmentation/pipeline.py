"""Views made on the device: solo-learn's augmentation schema, built with kornia.

A recipe's ``augmentations`` is a list of pipelines; each makes ``num_crops`` views of every image,
and the views of all pipelines are returned in order (solo-learn's convention). Images arrive as
uint8 and leave as normalised float, so the data loader never runs per-image Python code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import kornia.augmentation as K
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

from fkt_plugin.config import ConfigError, fill_defaults, require_in_range, unknown_keys

PIPELINE_DEFAULTS: dict[str, Any] = {
    "rrc": {"enabled": True, "crop_min_scale": 0.08, "crop_max_scale": 1.0},
    "color_jitter": {"prob": 0.0, "brightness": 0.0, "contrast": 0.0, "saturation": 0.0,
                     "hue": 0.0},
    "grayscale": {"prob": 0.0},
    "gaussian_blur": {"prob": 0.0, "sigma_min": 0.1, "sigma_max": 2.0},
    "solarization": {"prob": 0.0},
    "equalization": {"prob": 0.0},
    "horizontal_flip": {"prob": 0.0},
    "crop_size": None,
    "num_crops": 1,
}
_PROBABILITIES = ("color_jitter", "grayscale", "gaussian_blur", "solarization", "equalization",
                  "horizontal_flip")


def parse_pipelines(pipelines: ListConfig | Sequence[Any]) -> list[DictConfig]:
    """Validates a list of pipelines and fills each one's defaults.

    Raises:
        ConfigError: A key is unknown, a probability or scale is out of range, or ``crop_size``
            is missing; the message names ``augmentations[i].<key>``.
    """
    if len(pipelines) == 0:
        raise ConfigError("augmentations is empty: give at least one pipeline")
    parsed = []
    for i, raw in enumerate(pipelines):
        where = f"augmentations[{i}]"
        pipe = OmegaConf.create(OmegaConf.to_container(raw) if isinstance(raw, DictConfig)
                                else dict(raw))
        bad = unknown_keys(pipe, PIPELINE_DEFAULTS)
        if bad:
            raise ConfigError(f"{where} has unknown keys {', '.join(bad)}; known: "
                              f"{', '.join(PIPELINE_DEFAULTS)}")
        fill_defaults(pipe, PIPELINE_DEFAULTS, prefix=f"{where}.")
        if not (isinstance(pipe.crop_size, int) and pipe.crop_size > 0):
            raise ConfigError(f"{where}.crop_size={pipe.crop_size!r} must be a positive int")
        if not (isinstance(pipe.num_crops, int) and pipe.num_crops >= 1):
            raise ConfigError(f"{where}.num_crops={pipe.num_crops!r} must be an int >= 1")
        for key in _PROBABILITIES:
            require_in_range(pipe[key].prob, f"{where}.{key}.prob", 0.0, 1.0)
        require_in_range(pipe.rrc.crop_min_scale, f"{where}.rrc.crop_min_scale", 0.0, 1.0,
                         low_open=True)
        require_in_range(pipe.rrc.crop_max_scale, f"{where}.rrc.crop_max_scale",
                         pipe.rrc.crop_min_scale, 1.0)
        for key in ("brightness", "contrast", "saturation"):
            require_in_range(pipe.color_jitter[key], f"{where}.color_jitter.{key}", 0.0, 1e6)
        require_in_range(pipe.color_jitter.hue, f"{where}.color_jitter.hue", 0.0, 0.5)
        parsed.append(pipe)
    return parsed


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel on ``(B, C, H, W)`` floats in [0, 1]."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def blur_kernel_size(crop_size: int) -> int:
    """An odd kernel about 10% of the crop side, as in SimCLR (23 px at 224 px)."""
    return 2 * round(0.05 * crop_size) + 1


def build_view_transform(pipe: DictConfig, num_channels: int) -> nn.Sequential:
    """The kornia ops of one pipeline, in SimCLR's order, on floats in [0, 1].

    Grey images (``num_channels == 1``) skip saturation, hue and grayscale, which leave a grey
    image unchanged in torchvision as well.
    """
    size = (pipe.crop_size, pipe.crop_size)
    ops: list[nn.Module] = []
    if pipe.rrc.enabled:
        ops.append(K.RandomResizedCrop(size, scale=(pipe.rrc.crop_min_scale,
                                                    pipe.rrc.crop_max_scale)))
    else:
        ops.append(K.Resize(size))
    if pipe.horizontal_flip.prob > 0:
        ops.append(K.RandomHorizontalFlip(p=pipe.horizontal_flip.prob))
    jitter = pipe.color_jitter
    if jitter.prob > 0:
        colour = num_channels == 3
        # kornia's ColorJitter uses torchvision's formulas; ColorJiggle's brightness is additive.
        ops.append(K.ColorJitter(jitter.brightness, jitter.contrast,
                                 jitter.saturation if colour else 0.0,
                                 jitter.hue if colour else 0.0, p=jitter.prob))
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


class DeviceAugmentation(nn.Module):
    """Turns a uint8 batch into the list of normalised views that a method trains on.

    Args:
        pipelines: Parsed pipelines (:func:`parse_pipelines`).
        mean: Per-channel mean in [0, 1].
        std: Per-channel standard deviation in [0, 1].

    Shapes:
        input: ``(B, C, H, W)`` uint8.
        output: ``sum(num_crops)`` tensors of ``(B, C, crop_size, crop_size)`` float32.
    """

    def __init__(self, pipelines: Sequence[DictConfig], mean: Sequence[float],
                 std: Sequence[float]) -> None:
        super().__init__()
        channels = len(mean)
        self.transforms = nn.ModuleList(build_view_transform(p, channels) for p in pipelines)
        self.num_crops = [int(p.num_crops) for p in pipelines]
        self.normalize = Normalize(mean, std)

    @property
    def num_views(self) -> int:
        return sum(self.num_crops)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = images.float().div_(255)
        return [self.normalize(transform(x))
                for transform, crops in zip(self.transforms, self.num_crops, strict=True)
                for _ in range(crops)]


class EvalTransform(nn.Module):
    """Evaluation input: resize to the training crop size (when it differs), then normalise.

    Shapes:
        input: ``(B, C, H, W)`` uint8.
        output: ``(B, C, size, size)`` float32.
    """

    def __init__(self, size: int, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.size = size
        self.resize = K.Resize((size, size))
        self.normalize = Normalize(mean, std)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().div_(255)
        if x.shape[-2:] != (self.size, self.size):
            x = self.resize(x)
        return self.normalize(x)
