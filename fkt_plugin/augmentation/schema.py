"""solo-learn's augmentation schema: a list of pipelines, validated once, with defaults here.

A recipe's ``augmentations`` is a list of pipelines; each makes ``num_crops`` views of every image,
and the views of all pipelines come out in order (solo-learn's convention). Both backends
(:mod:`~fkt_plugin.augmentation.engine` and :mod:`~fkt_plugin.augmentation.kornia_views` on the
device,
:mod:`~fkt_plugin.augmentation.torchvision_views` per image in loader workers) build from the
parsed pipelines, so one recipe runs on either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig

from fkt_plugin.config import (
    fill_defaults,
    mapping_copy,
    require_auto_or_bool,
    require_in_range,
    unknown_keys,
)
from fkt_plugin.errors import ConfigError

# fused: the view engine, batches on the training device with no host-device synchronisation;
# kornia: kornia's augmentation containers on the device (for comparison; the committed studies
# ran it); torchvision: per image in DataLoader workers (solo-learn's and lightly's way).
BACKENDS = ("fused", "kornia", "torchvision")


def check_device_resident(value: Any, backend: str) -> None:
    """Validates ``data.device_resident`` (``auto``, true or false) against the backend.

    Raises:
        ConfigError: An unknown value, or true with the torchvision backend.
    """
    require_auto_or_bool(value, "data.device_resident")
    if value is True and backend == "torchvision":
        raise ConfigError("data.device_resident=true keeps the images on the device for the "
                          "device backends, but data.augmentation_backend=torchvision makes views "
                          "in loader workers from host images: set data.device_resident=auto, or "
                          "a device backend (fused)")

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
        pipe = mapping_copy(raw, where)
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


def count_views(pipelines: Sequence[Any]) -> int:
    """Views per image that a list of pipelines makes (``num_crops`` of each, default 1)."""
    return sum(int(pipe.get("num_crops", 1)) for pipe in pipelines)


def blur_kernel_size(crop_size: int) -> int:
    """An odd kernel about 10% of the crop side, as in SimCLR (23 px at 224 px)."""
    return 2 * round(0.05 * crop_size) + 1


def view_pipelines(pipelines: Sequence[DictConfig]) -> list[DictConfig]:
    """The pipeline that makes each view, by view index (a pipeline repeats ``num_crops``
    times)."""
    return [pipe for pipe in pipelines for _ in range(int(pipe.get("num_crops", 1)))]
