"""The view engine against torchvision: crop geometry drawn as torchvision draws it, every
operation equal to torchvision's functional op per image given the same parameters, parameter
distributions, and whole views of a real photo.

Distributions are compared with the two-sample Kolmogorov-Smirnov statistic at the 0.1% level
(seeded draws, so the outcome is fixed); each test also shows that a known-wrong variant fails.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import chisquare, ks_2samp
from skimage import data as skdata
from torch import nn
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from fkt_plugin.augmentation import DeviceAugmentation, PerImageViews, parse_pipelines
from fkt_plugin.augmentation import engine as engine_module
from fkt_plugin.augmentation.blur import gaussian_blur, gaussian_exponents
from fkt_plugin.augmentation.colour import (
    colour_jitter,
    grey_matrix,
    hue_offsets,
    jitter_order,
    shift_hue,
    solarize,
)
from fkt_plugin.augmentation.engine import ViewGroup
from fkt_plugin.augmentation.geometry import TRIES, crop_boxes, resample, resampling_weights

N = 4000
STRONG = {"crop_size": 32, "rrc": {"crop_min_scale": 0.08},
          "color_jitter": {"prob": 0.8, "brightness": 0.4, "contrast": 0.4, "saturation": 0.2,
                           "hue": 0.1},
          "grayscale": {"prob": 0.2}, "gaussian_blur": {"prob": 0.5},
          "solarization": {"prob": 0.2}, "horizontal_flip": {"prob": 0.5}}
GREY, IDENTITY, OFFSETS = grey_matrix(3), torch.eye(3), hue_offsets()


def jitter(images: torch.Tensor, factors: torch.Tensor, keys: torch.Tensor, apply: torch.Tensor,
           hue: bool, select: bool = False) -> torch.Tensor:
    """:func:`colour_jitter` on ``(N, 3, H, W)`` images."""
    out = colour_jitter(images.flatten(2), factors, keys, apply.view(-1, 1, 1), GREY, IDENTITY,
                        OFFSETS if hue else None, select=select)
    return out.view(images.shape)


def ks_limit(n: int, m: int) -> float:
    """Critical two-sample KS statistic at the 0.1% level."""
    return 1.949 * math.sqrt((n + m) / (n * m))


def differ(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> bool:
    return ks_2samp(np.asarray(a), np.asarray(b)).statistic > ks_limit(len(a), len(b))


def smooth_images(n: int, size: int = 32, width: int | None = None) -> torch.Tensor:
    """Floats in [0, 1] with structure at several scales (so resampling errors show)."""
    coarse = torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    return nn.functional.interpolate(coarse, size=(size, width or size), mode="bilinear",
                                     align_corners=False)


def draw_crops(count: int, height: int, width: int, low: float = 0.08,
               high: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    u = torch.rand(count, 2 * TRIES + 2)
    return crop_boxes(u[:, :TRIES], u[:, TRIES:2 * TRIES], u[:, 2 * TRIES:],
                      torch.tensor([low]), torch.tensor([high - low]), height, width, low)


def test_random_resized_crop_geometry_matches_torchvision() -> None:
    height, width = 40, 56  # not square, so that the aspect ratio's orientation matters
    torch.manual_seed(0)
    start, size = draw_crops(N, height, width)
    reference = v2.RandomResizedCrop(32, scale=(0.08, 1.0))
    drawn = [reference.make_params([torch.zeros(3, height, width)]) for _ in range(N)]
    t_w = torch.tensor([d["width"] for d in drawn], dtype=torch.float32)
    t_h = torch.tensor([d["height"] for d in drawn], dtype=torch.float32)
    t_left = torch.tensor([d["left"] for d in drawn]) / (width - t_w).clamp(min=1)
    w, h = size.unbind(-1)
    assert not differ(w * h, t_w * t_h)  # crop area
    assert not differ(torch.log(w / h), torch.log(t_w / t_h))  # aspect ratio
    assert not differ(start[:, 0] / (width - w).clamp(min=1), t_left)  # position
    assert bool(((start >= 0) & (start + size <= torch.tensor([width, height]))).all())
    # A sampler uniform in the ratio (not in its log) is told apart by the same test.
    uniform_ratio = np.random.default_rng(0).uniform(3 / 4, 4 / 3, N)
    assert differ(np.log(uniform_ratio), torch.log(t_w / t_h))


def test_crops_that_never_fit_fall_back_to_torchvision_central_crop() -> None:
    # A 4:1 image with areas of at least 90%: no candidate fits, torchvision centres a crop of
    # the largest allowed ratio.
    start, size = draw_crops(64, 20, 80, low=0.9)
    reference = v2.RandomResizedCrop(8, scale=(0.9, 1.0)).make_params(
        [torch.zeros(3, 20, 80)])
    assert torch.equal(size, torch.tensor([[reference["width"], reference["height"]]] * 64,
                                          dtype=torch.float32))
    assert torch.equal(start, torch.tensor([[reference["left"], reference["top"]]] * 64,
                                           dtype=torch.float32))


@pytest.mark.parametrize(("height", "width", "out"), [(32, 32, 32), (40, 56, 32), (64, 64, 24)])
def test_resampling_equals_torchvision_resized_crop_and_flip(height: int, width: int,
                                                             out: int) -> None:
    images = smooth_images(48, height, width)
    torch.manual_seed(1)
    start, size = draw_crops(48, height, width)
    flip = torch.stack([torch.rand(48) < 0.5, torch.zeros(48, dtype=torch.bool)], -1)
    views = resample(images, resampling_weights(start[None], size[None], flip[None], out,
                                                max(height, width)))[0]
    expected = []
    for image, (left, top), (w, h), flipped in zip(images, start.int().tolist(),
                                                   size.int().tolist(), flip[:, 0], strict=True):
        crop = TF.resized_crop(image, top, left, h, w, [out, out], antialias=True)
        expected.append(crop.flip(-1) if flipped else crop)
    # Same formula (torchvision's antialiased triangle filter), summed in another order.
    torch.testing.assert_close(views, torch.stack(expected), atol=5e-5, rtol=0)
    if out < height:  # shrunk crops: plain bilinear (no antialias) is told apart
        plain = torch.stack([TF.resized_crop(image, top, left, h, w, [out, out],
                                             antialias=False)
                             for image, (left, top), (w, h) in zip(
                                 images, start.int().tolist(), size.int().tolist(), strict=True)])
        unflipped = torch.where(flip[:, :1, None, None], views.flip(-1), views)
        assert float((unflipped - plain).abs().max()) > 1e-2


def random_order_images() -> torch.Tensor:
    images = torch.cat([smooth_images(16), torch.rand(16, 3, 32, 32)])
    images[0, :, :4, :4] = 0.5  # grey pixels: no hue
    images[1, 1, :4, :4] = images[1, 0, :4, :4]  # two largest channels tie
    return images


ADJUST = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]


@pytest.mark.parametrize("select", [False, True], ids=["blended", "selected"])
@pytest.mark.parametrize("hue", [True, False])
def test_colour_jitter_equals_torchvision_steps_in_each_images_order(hue: bool,
                                                                     select: bool) -> None:
    images = random_order_images()
    torch.manual_seed(4)
    factors = torch.rand(len(images), 4) * torch.tensor([1.2, 1.2, 1.2, 0.0])
    factors += torch.tensor([0.4, 0.4, 0.4, 0.0])
    turns = (torch.rand(len(images)) - 0.5) if hue else torch.zeros(len(images))
    factors[:, 3] = 6 * turns
    keys = torch.rand(len(images), 4)
    apply = torch.arange(len(images)) % 5 != 0
    out = jitter(images, factors, keys, apply, hue, select)
    expected = []
    for image, f, k, a, t in zip(images, factors, keys, apply, turns, strict=True):
        order = k.argsort().tolist() if hue else k[:3].argsort().tolist()
        for step in order if bool(a) else []:
            image = ADJUST[step](image, float(t) if step == 3 else float(f[step]))
        expected.append(image)
    torch.testing.assert_close(out, torch.stack(expected), atol=1e-4, rtol=0)
    # The order matters: one fixed order for every image is told apart.
    fixed = jitter(images, factors, torch.arange(4.0).expand(len(images), 4), apply, hue)
    assert float((fixed - out).abs().max()) > 1e-2


def test_jitter_orders_are_uniform_per_image() -> None:
    torch.manual_seed(5)
    keys = torch.rand(24 * 400, 4)
    steps, before_hue = jitter_order(keys, hue=True)
    assert before_hue is not None
    hue_position = before_hue.sum(1)
    orders = [tuple(s[:p]) + (3,) + tuple(s[p:])
              for s, p in zip(steps.tolist(), hue_position.tolist(), strict=True)]
    counts = [orders.count(order) for order in itertools.permutations(range(4))]
    assert chisquare(counts).pvalue > 1e-3  # 24 orders, equally often
    assert chisquare([*counts[:23], counts[23] + 200]).pvalue < 1e-3  # a biased draw fails


def test_hue_shift_equals_torchvision() -> None:
    images = random_order_images()
    turns = torch.linspace(-0.5, 0.5, len(images))
    out = shift_hue(images.flatten(2), 6 * turns.view(-1, 1, 1), OFFSETS).view(images.shape)
    expected = torch.stack([TF.adjust_hue(i, float(t)) for i, t in zip(images, turns,
                                                                        strict=True)])
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)


def capture(monkeypatch: pytest.MonkeyPatch, name: str) -> list[tuple]:
    """Records the arguments the engine passes to one of its step functions."""
    calls: list[tuple] = []
    original = getattr(engine_module, name)

    def recording(*args: object, **kwargs: object) -> torch.Tensor:
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(engine_module, name, recording)
    return calls


@pytest.mark.parametrize("factor", ["brightness", "contrast", "saturation", "hue"])
def test_jitter_factors_are_drawn_as_torchvision_draws_them(
        factor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = capture(monkeypatch, "colour_jitter")
    group = ViewGroup(parse_pipelines([STRONG]), 3)
    group.select_on_cpu = False  # every image's draws reach the step
    torch.manual_seed(2)
    group(torch.rand(N, 3, 8, 8))
    _, factors, _, apply, *_ = calls[0]
    index = ["brightness", "contrast", "saturation", "hue"].index(factor)
    drawn = factors[:, index] / (6 if factor == "hue" else 1)
    reference_op = v2.ColorJitter(0.4, 0.4, 0.2, 0.1)
    reference = [float(reference_op.make_params([torch.zeros(3, 8, 8)])[f"{factor}_factor"])
                 for _ in range(N)]
    assert not differ(drawn, reference)
    centre = 0.0 if factor == "hue" else 1.0
    assert differ(drawn, np.asarray(reference) * 1.2 - 0.2 * centre)  # a 20% wider range fails
    assert float(apply.float().mean()) == pytest.approx(0.8, abs=0.02)


def test_blur_sigma_and_kernel_match_torchvision(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = capture(monkeypatch, "gaussian_blur")
    group = ViewGroup(parse_pipelines([STRONG]), 3)
    group.select_on_cpu = False  # every image's draws reach the step
    torch.manual_seed(5)
    group(torch.rand(N, 3, 8, 8))
    _, sigma, apply, exponents, _ = calls[0]
    kernel_size = len(exponents)
    reference = v2.GaussianBlur(kernel_size, sigma=(0.1, 2.0))
    drawn = [reference.make_params([torch.zeros(3, 32, 32)])["sigma"][0] for _ in range(N)]
    assert not differ(sigma.flatten(), drawn)
    assert differ(sigma.flatten(), np.asarray(drawn) * 0.5 + 0.05)  # sigma in [0.1, 1.05] fails
    assert kernel_size == 5  # odd, ~10% of the 32 px crop
    assert float(apply.float().mean()) == pytest.approx(0.5, abs=0.03)
    images = smooth_images(8)
    sigmas = torch.linspace(0.1, 2.0, 8).view(-1, 1, 1)
    chosen = (torch.arange(8) % 3 != 0).view(-1, 1, 1)
    out = gaussian_blur(images.flatten(2), sigmas, chosen, gaussian_exponents(5), 32).view(
        images.shape)
    expected = torch.stack([TF.gaussian_blur(i, [5, 5], [float(s)] * 2) if bool(c) else i
                            for i, s, c in zip(images, sigmas.flatten(), chosen, strict=True)])
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_grayscale_solarization_and_equalization_match_torchvision() -> None:
    images = smooth_images(8)
    pipeline = {**STRONG, "grayscale": {"prob": 1.0}, "color_jitter": {"prob": 0.0},
                "gaussian_blur": {"prob": 0.0}, "solarization": {"prob": 0.0},
                "rrc": {"enabled": False}, "horizontal_flip": {"prob": 0.0}}
    grey = ViewGroup(parse_pipelines([pipeline]), 3)(images)[0]
    torch.testing.assert_close(grey, TF.rgb_to_grayscale(images, num_output_channels=3),
                               atol=1e-6, rtol=0)
    assert float((grey - images.mean(1, keepdim=True)).abs().max()) > 1e-2  # not an average
    values = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16).expand(2, 3, 16, 16)
    chosen = torch.tensor([True, False]).view(2, 1, 1, 1)
    out = solarize(values.float() / 255, chosen)  # any layout: elementwise
    torch.testing.assert_close(out[0], TF.solarize(values[0], 128).float() / 255)
    assert torch.equal(out[1], values[1].float() / 255)
    equalize = {**pipeline, "grayscale": {"prob": 0.0}, "equalization": {"prob": 1.0}}
    photo = (smooth_images(4) * 0.5 + 0.2)
    out = ViewGroup(parse_pipelines([equalize]), 3)(photo)[0]
    torch.testing.assert_close(out, TF.equalize(photo), atol=1e-6, rtol=0)
    assert float((out - photo).abs().max()) > 0.1


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
