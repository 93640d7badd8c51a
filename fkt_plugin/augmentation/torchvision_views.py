"""The torchvision backend: the same pipelines applied per image on the CPU, in loader workers.

This is how solo-learn and lightly augment (one image at a time, in DataLoader worker processes);
it exists so that the device engine can be compared with it on one recipe
(``data.augmentation_backend=torchvision``). Operations run on uint8 tensors, as PIL's do, and
in the kornia backend's order; the image becomes float and is normalised last.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from omegaconf import DictConfig
from torchvision.transforms import v2

from fkt_plugin.augmentation.schema import blur_kernel_size, count_views

# Pixels at or above this value are inverted: x / 255 >= 0.5, kornia's threshold on floats.
SOLARIZE_THRESHOLD = 128


def build_torchvision_transform(pipe: DictConfig, mean: Sequence[float],
                                std: Sequence[float]) -> v2.Compose:
    """One pipeline as torchvision v2 ops: ``(C, H, W)`` uint8 → normalised float32 view.

    Grey images skip saturation, hue and grayscale, as in the kornia backend.
    """
    size = [pipe.crop_size, pipe.crop_size]
    colour = len(mean) == 3
    ops: list[v2.Transform] = []
    if pipe.rrc.enabled:
        ops.append(v2.RandomResizedCrop(size, scale=(pipe.rrc.crop_min_scale,
                                                     pipe.rrc.crop_max_scale), antialias=True))
    else:
        ops.append(v2.Resize(size, antialias=True))
    if pipe.horizontal_flip.prob > 0:
        ops.append(v2.RandomHorizontalFlip(p=pipe.horizontal_flip.prob))
    jitter = pipe.color_jitter
    if jitter.prob > 0:
        ops.append(v2.RandomApply([v2.ColorJitter(
            jitter.brightness, jitter.contrast, jitter.saturation if colour else 0.0,
            jitter.hue if colour else 0.0)], p=jitter.prob))
    if pipe.grayscale.prob > 0 and colour:
        ops.append(v2.RandomGrayscale(p=pipe.grayscale.prob))
    if pipe.gaussian_blur.prob > 0:
        ops.append(v2.RandomApply([v2.GaussianBlur(
            blur_kernel_size(pipe.crop_size),
            sigma=(pipe.gaussian_blur.sigma_min, pipe.gaussian_blur.sigma_max))],
            p=pipe.gaussian_blur.prob))
    if pipe.solarization.prob > 0:
        ops.append(v2.RandomSolarize(SOLARIZE_THRESHOLD, p=pipe.solarization.prob))
    if pipe.equalization.prob > 0:
        ops.append(v2.RandomEqualize(p=pipe.equalization.prob))
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(ops)


class PerImageViews:
    """Makes every view of one image, pipeline by pipeline (picklable, for worker processes).

    Args:
        pipelines: Parsed pipelines (:func:`~fkt_plugin.augmentation.parse_pipelines`).
        mean: Per-channel mean in [0, 1].
        std: Per-channel standard deviation in [0, 1].

    Shapes:
        input: ``(C, H, W)`` uint8.
        output: ``sum(num_crops)`` tensors of ``(C, crop_size, crop_size)`` float32.
    """

    def __init__(self, pipelines: Sequence[DictConfig], mean: Sequence[float],
                 std: Sequence[float]) -> None:
        self.transforms = [build_torchvision_transform(p, mean, std) for p in pipelines]
        self.num_crops = [int(p.num_crops) for p in pipelines]
        self.num_views = count_views(pipelines)

    def __call__(self, image: torch.Tensor) -> list[torch.Tensor]:
        return [transform(image)
                for transform, crops in zip(self.transforms, self.num_crops, strict=True)
                for _ in range(crops)]
