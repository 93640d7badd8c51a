"""The kornia engine against torchvision, statistically: crop geometry, colour-jitter factors and
formulas, grayscale weights, blur sigma, solarization, and whole views of a real photo.

Distributions are compared with the two-sample Kolmogorov-Smirnov statistic at the 0.1% level
(seeded draws, so the outcome is fixed); each test also shows that a known-wrong variant fails.
Colour jitter is our own batched module (:mod:`fkt_plugin.augmentation.colour_jitter`), the
other operations are kornia's.
"""

from __future__ import annotations

import math

import kornia.augmentation as K
import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import ks_2samp
from skimage import data as skdata
from torch import nn
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from fkt_plugin.augmentation import (
    DeviceAugmentation,
    PerImageViews,
    build_torchvision_transform,
    build_view_transform,
    parse_pipelines,
)
from fkt_plugin.augmentation.colour_jitter import BatchColorJitter

N = 4000
STRONG = {"crop_size": 32, "rrc": {"crop_min_scale": 0.08},
          "color_jitter": {"prob": 0.8, "brightness": 0.4, "contrast": 0.4, "saturation": 0.2,
                           "hue": 0.1},
          "grayscale": {"prob": 0.2}, "gaussian_blur": {"prob": 0.5},
          "solarization": {"prob": 0.2}, "horizontal_flip": {"prob": 0.5}}


def ks_limit(n: int, m: int) -> float:
    """Critical two-sample KS statistic at the 0.1% level."""
    return 1.949 * math.sqrt((n + m) / (n * m))


def differ(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> bool:
    return ks_2samp(np.asarray(a), np.asarray(b)).statistic > ks_limit(len(a), len(b))


def ops(pipeline: dict) -> tuple[nn.Sequential, list[v2.Transform]]:
    """The kornia and torchvision ops that our builders make from one pipeline."""
    pipe = parse_pipelines([pipeline])[0]
    torchvision_ops = []
    for op in build_torchvision_transform(pipe, [0.5] * 3, [0.25] * 3).transforms:
        torchvision_ops += op.transforms if isinstance(op, v2.RandomApply) else [op]
    return build_view_transform(pipe, 3), torchvision_ops


def of_type(modules: list | nn.Sequential, cls: type) -> nn.Module:
    return next(m for m in modules if isinstance(m, cls))


def smooth_images(n: int, size: int = 32) -> torch.Tensor:
    """Floats in [0, 1] with structure at several scales (so resampling errors show)."""
    coarse = torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    return nn.functional.interpolate(coarse, size=size, mode="bilinear", align_corners=False)


def test_random_resized_crop_geometry_matches_torchvision() -> None:
    kornia_ops, torchvision_ops = ops(STRONG)
    kornia_rrc, torchvision_rrc = of_type(kornia_ops, K.RandomResizedCrop), of_type(
        torchvision_ops, v2.RandomResizedCrop)
    height, width = 40, 56  # not square, so that the aspect ratio's orientation matters
    torch.manual_seed(0)
    src = kornia_rrc.forward_parameters((N, 3, height, width))["src"]
    k_w, k_h = src[:, 1, 0] - src[:, 0, 0] + 1, src[:, 2, 1] - src[:, 0, 1] + 1
    k_left = src[:, 0, 0] / (width - k_w).clamp(min=1)
    drawn = [torchvision_rrc.make_params([torch.zeros(3, height, width)]) for _ in range(N)]
    t_w = torch.tensor([d["width"] for d in drawn], dtype=torch.float32)
    t_h = torch.tensor([d["height"] for d in drawn], dtype=torch.float32)
    t_left = torch.tensor([d["left"] for d in drawn]) / (width - t_w).clamp(min=1)
    assert not differ(k_w * k_h, t_w * t_h)  # crop area
    assert not differ(torch.log(k_w / k_h), torch.log(t_w / t_h))  # aspect ratio
    assert not differ(k_left, t_left)  # position
    # A sampler uniform in the ratio (not in its log) is told apart by the same test.
    uniform_ratio = np.random.default_rng(0).uniform(3 / 4, 4 / 3, N)
    assert differ(np.log(uniform_ratio), torch.log(t_w / t_h))


def test_random_resized_crop_resamples_like_torchvision() -> None:
    kornia_rrc = of_type(ops(STRONG)[0], K.RandomResizedCrop)
    images = smooth_images(64)
    torch.manual_seed(1)
    params = kornia_rrc.forward_parameters(images.shape)
    out = kornia_rrc(images, params=params)
    src = params["src"].int()
    for i in range(len(images)):
        left, top = int(src[i, 0, 0]), int(src[i, 0, 1])
        w, h = int(src[i, 1, 0]) - left + 1, int(src[i, 2, 1]) - top + 1
        expected = TF.resized_crop(images[i], top, left, h, w, [32, 32], antialias=True)
        assert torch.allclose(out[i], expected, atol=1e-4)
    # kornia's default sampling grid (align_corners=True) is half a pixel off.
    shifted = K.RandomResizedCrop((32, 32))(images, params=params)
    assert (shifted - out).abs().max() > 1e-2


@pytest.mark.parametrize("factor", ["brightness", "contrast", "saturation", "hue"])
def test_colour_jitter_factors_are_drawn_as_torchvision_draws_them(factor: str) -> None:
    kornia_ops, torchvision_ops = ops(STRONG)
    jitter = of_type(kornia_ops, BatchColorJitter)
    torchvision_jitter = of_type(torchvision_ops, v2.ColorJitter)
    torch.manual_seed(2)
    params = jitter.draw(N, torch.device("cpu"))
    drawn = params[factor]
    image = torch.zeros(3, 8, 8)
    reference = [float(torchvision_jitter.make_params([image])[f"{factor}_factor"])
                 for _ in range(N)]
    assert not differ(drawn, reference)
    span = {"brightness": 0.4, "contrast": 0.4, "saturation": 0.2, "hue": 0.1}[factor]
    centre = 0.0 if factor == "hue" else 1.0
    assert centre - span <= float(drawn.min()) and float(drawn.max()) <= centre + span
    assert differ(drawn, np.asarray(reference) * 1.2 - 0.2 * centre)  # a 20% wider range fails
    assert float(params["apply"].float().mean()) == pytest.approx(0.8, abs=0.02)
    assert sorted(params["order"].tolist()) == [0, 1, 2, 3]


ADJUST = {"brightness": TF.adjust_brightness, "contrast": TF.adjust_contrast,
          "saturation": TF.adjust_saturation, "hue": TF.adjust_hue}


@pytest.mark.parametrize("factor", list(ADJUST))
def test_colour_jitter_applies_torchvision_formulas(factor: str) -> None:
    images = torch.cat([smooth_images(16), torch.rand(16, 3, 32, 32)])
    images[0, :, :4, :4] = 0.5  # grey pixels: no hue
    images[1, 1, :4, :4] = images[1, 0, :4, :4]  # two largest channels tie
    span = 0.4 if factor != "hue" else 0.5
    jitter = BatchColorJitter(**{factor: span}, p=1.0)
    torch.manual_seed(4)
    params = jitter.draw(len(images), images.device)
    out = jitter.jitter(images, params)
    expected = torch.stack([ADJUST[factor](image, float(f))
                            for image, f in zip(images, params[factor], strict=True)])
    assert float((out - expected).abs().max()) < 1e-4
    if factor != "hue":  # kornia's ColorJiggle (additive brightness, ...) fails the same check
        jiggle = K.ColorJiggle(**{factor: span}, p=1.0)
        jiggled = jiggle(images)
        expected = torch.stack([ADJUST[factor](image, float(f)) for image, f in
                                zip(images, jiggle._params[f"{factor}_factor"], strict=True)])
        assert float((jiggled - expected).abs().max()) > 1e-2


def test_colour_jitter_leaves_unselected_images_and_grey_hue_alone() -> None:
    images = smooth_images(64)
    jitter = BatchColorJitter(0.4, 0.4, 0.4, 0.1, p=0.5)
    torch.manual_seed(8)
    params = jitter.draw(len(images), images.device)
    out = jitter.jitter(images, params)
    kept = ~params["apply"]
    assert 0 < int(kept.sum()) < 64 and torch.equal(out[kept], images[kept])
    assert not torch.allclose(out[~kept], images[~kept])
    grey = images[:, :1]
    hue_only = BatchColorJitter(hue=0.5, saturation=0.9, p=1.0)
    assert torch.equal(hue_only(grey), grey)


@pytest.mark.parametrize("channels", [3, 1])
def test_colour_jitter_by_mask_gives_the_images_selection_by_index_gives(channels: int) -> None:
    # The GPU path (jitter all, keep the unselected by a mask: no host sync) against the CPU
    # path (jitter only the selected images), with the same drawn parameters.
    images = smooth_images(64)[:, :channels]
    jitter = BatchColorJitter(0.4, 0.4, 0.4, 0.1, p=0.5)
    torch.manual_seed(9)
    params = jitter.draw(len(images), images.device)
    masked = jitter.jitter(images, params, by_mask=True)
    indexed = jitter.jitter(images, params, by_mask=False)
    torch.testing.assert_close(masked, indexed, atol=1e-6, rtol=0)
    assert not torch.allclose(masked, images)
    none = {**params, "apply": torch.zeros(64, dtype=torch.bool)}
    assert torch.equal(jitter.jitter(images, none, by_mask=True), images)


def test_grayscale_uses_torchvision_weights() -> None:
    images = smooth_images(8)
    grey = of_type(ops(STRONG)[0], K.RandomGrayscale)
    forced = K.RandomGrayscale(p=1.0, rgb_weights=grey.rgb_weights)(images)
    expected = TF.rgb_to_grayscale(images, num_output_channels=3)
    assert torch.allclose(forced, expected, atol=1e-4)
    luma = (images * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    assert torch.allclose(forced, luma.expand_as(forced), atol=1e-4)
    average = images.mean(1, keepdim=True)
    assert (forced - average).abs().max() > 1e-2


def test_blur_sigma_range_kernel_and_formula_match_torchvision() -> None:
    kornia_ops, torchvision_ops = ops(STRONG)
    kornia_blur = of_type(kornia_ops, K.RandomGaussianBlur)
    torchvision_blur = of_type(torchvision_ops, v2.GaussianBlur)
    torch.manual_seed(5)
    sigma = kornia_blur._param_generator((N, 3, 32, 32))["sigma"]
    reference = [torchvision_blur.make_params([torch.zeros(3, 32, 32)])["sigma"][0]
                 for _ in range(N)]
    assert not differ(sigma, reference)
    assert float(sigma.min()) >= 0.1 and float(sigma.max()) <= 2.0
    assert differ(sigma, np.asarray(reference) * 0.5 + 0.05)  # sigma in [0.1, 1.05] fails
    assert tuple(torchvision_blur.kernel_size) == (5, 5)  # odd, ~10% of the 32 px crop
    images = smooth_images(8)
    blurred = K.RandomGaussianBlur(torchvision_blur.kernel_size, (0.1, 2.0), p=1.0)
    out = blurred(images)
    expected = torch.stack([TF.gaussian_blur(image, list(torchvision_blur.kernel_size),
                                             [float(s)] * 2)
                            for image, s in zip(images, blurred._params["sigma"], strict=True)])
    assert torch.allclose(out, expected, atol=1e-5)


def test_solarization_inverts_the_same_pixels() -> None:
    values = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16).expand(1, 3, 16, 16)
    solarize = of_type(ops(STRONG)[0], K.RandomSolarize)
    params = solarize.forward_parameters(values.shape)
    params["batch_prob"] = torch.ones_like(params["batch_prob"], dtype=torch.bool)
    out = solarize(values.float() / 255, params=params)
    reference = of_type(ops(STRONG)[1], v2.RandomSolarize)
    expected = TF.solarize(values[0], reference.threshold).float() / 255
    assert torch.allclose(out[0], expected, atol=1e-6)


def test_whole_views_of_a_photo_match_between_backends() -> None:
    photo = Image.fromarray(skdata.astronaut()).resize((32, 32), Image.Resampling.BILINEAR)
    image = torch.from_numpy(np.array(photo)).permute(2, 0, 1).contiguous()
    pipes = parse_pipelines([STRONG])
    mean, std = [0.5] * 3, [0.25] * 3
    count = 2000
    torch.manual_seed(6)
    on_device = DeviceAugmentation(pipes, mean, std)(image.expand(count, -1, -1, -1))[0]
    per_image = torch.stack([PerImageViews(pipes, mean, std)(image)[0] for _ in range(count)])

    def statistics(views: torch.Tensor) -> dict[str, torch.Tensor]:
        pixels = views * 0.25 + 0.5
        return {"brightness": pixels.mean((1, 2, 3)), "contrast": pixels.std((1, 2, 3)),
                "colourfulness": (pixels.max(1).values - pixels.min(1).values).mean((1, 2)),
                "sharpness": (pixels[..., 1:] - pixels[..., :-1]).abs().mean((1, 2, 3)),
                "red": pixels[:, 0].mean((1, 2))}

    ours, theirs = statistics(on_device), statistics(per_image)
    assert not [key for key in ours if differ(ours[key], theirs[key])]
    # Views without colour jitter are told apart by the same statistics.
    plain = parse_pipelines([{**STRONG, "color_jitter": {"prob": 0.0}}])
    no_jitter = statistics(DeviceAugmentation(plain, mean, std)(image.expand(count, -1, -1, -1))[0])
    assert differ(no_jitter["contrast"], theirs["contrast"])
