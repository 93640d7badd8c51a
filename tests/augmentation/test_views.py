"""Device views: the schema's validation, shapes, determinism, and the normalisation."""

from __future__ import annotations

import pytest
import torch

from fkt_plugin.augmentation import (
    DeviceAugmentation,
    EvalTransform,
    PerImageViews,
    parse_pipelines,
)
from fkt_plugin.errors import ConfigError

STRONG = {"rrc": {"enabled": True, "crop_min_scale": 0.2}, "crop_size": 24, "num_crops": 2,
          "color_jitter": {"prob": 0.8, "brightness": 0.4, "contrast": 0.4, "saturation": 0.4,
                           "hue": 0.1},
          "grayscale": {"prob": 0.2}, "gaussian_blur": {"prob": 0.5},
          "solarization": {"prob": 0.2}, "horizontal_flip": {"prob": 0.5}}


def _images(channels: int) -> torch.Tensor:
    return torch.randint(0, 256, (16, channels, 32, 32), generator=torch.Generator().manual_seed(0),
                         dtype=torch.uint8)


@pytest.mark.parametrize("channels", [1, 3])
def test_views_have_the_configured_count_shape_and_dtype(channels: int) -> None:
    pipes = parse_pipelines([STRONG, {"rrc": {"enabled": False}, "crop_size": 32}])
    aug = DeviceAugmentation(pipes, [0.5] * channels, [0.25] * channels)
    views = aug(_images(channels))
    assert aug.num_views == 3 and len(views) == 3
    assert [tuple(v.shape) for v in views] == [(16, channels, 24, 24)] * 2 + [(16, channels, 32,
                                                                               32)]
    assert all(v.dtype == torch.float32 for v in views)
    assert not torch.equal(views[0], views[1])  # two independent draws


def test_same_seed_gives_the_same_views() -> None:
    aug = DeviceAugmentation(parse_pipelines([STRONG]), [0.5] * 3, [0.25] * 3)
    torch.manual_seed(7)
    first = aug(_images(3))
    torch.manual_seed(7)
    second = aug(_images(3))
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_a_pipeline_without_augmentations_is_the_normalised_image() -> None:
    images = _images(3)
    aug = DeviceAugmentation(parse_pipelines([{"rrc": {"enabled": False}, "crop_size": 32}]),
                             [0.1, 0.2, 0.3], [0.5, 0.5, 0.25])
    mean = torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)
    std = torch.tensor([0.5, 0.5, 0.25]).view(1, 3, 1, 1)
    expected = (images.float() / 255 - mean) / std
    assert torch.allclose(aug(images)[0], expected, atol=1e-5)
    assert torch.allclose(EvalTransform(32, [0.1, 0.2, 0.3], [0.5, 0.5, 0.25])(images), expected,
                          atol=1e-5)


@pytest.mark.parametrize(("pipeline", "message"), [
    ({"crop_size": 32, "colour_jitter": {}}, r"augmentations\[0\] has unknown keys colour_jitter"),
    ({"crop_size": 32, "grayscale": {"prob": 1.2}}, r"augmentations\[0\].grayscale.prob=1.2"),
    ({"num_crops": 2}, r"augmentations\[0\].crop_size=None must be a positive int"),
    ({"crop_size": 32, "rrc": {"crop_min_scale": 0.9, "crop_max_scale": 0.5}},
     r"crop_max_scale=0.5 is outside \[0.9, 1.0\]"),
])
def test_bad_pipelines_are_named(pipeline: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_pipelines([pipeline])


def test_multi_crop_views_come_out_pipeline_by_pipeline_on_both_backends() -> None:
    pipes = parse_pipelines([{**STRONG, "crop_size": 32, "num_crops": 2},
                             {**STRONG, "crop_size": 16, "num_crops": 4}])
    images = _images(3)
    batched = DeviceAugmentation(pipes, [0.5] * 3, [0.25] * 3)(images)
    per_image = PerImageViews(pipes, [0.5] * 3, [0.25] * 3)(images[0])
    assert [v.shape[-1] for v in batched] == [v.shape[-1] for v in per_image] == [32] * 2 + [16] * 4
    assert all(v.shape[:2] == (16, 3) for v in batched) and all(v.shape[0] == 3 for v in per_image)


def test_cpu_chunks_keep_the_images_in_order() -> None:
    images = _images(3)
    plain = parse_pipelines([{"rrc": {"enabled": False}, "crop_size": 32},
                             {"rrc": {"enabled": False}, "crop_size": 16}])
    whole = DeviceAugmentation(plain, [0.5] * 3, [0.25] * 3)(images)
    chunked = DeviceAugmentation(plain, [0.5] * 3, [0.25] * 3, cpu_chunk_pixels=3 * 32 * 32)(
        images)  # chunks of 3 images, the last one of 1
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(whole, chunked, strict=True))
    strong = DeviceAugmentation(parse_pipelines([STRONG]), [0.5] * 3, [0.25] * 3,
                                cpu_chunk_pixels=3 * 32 * 32)
    torch.manual_seed(3)
    first = strong(images)
    torch.manual_seed(3)
    assert all(torch.equal(a, b) for a, b in zip(first, strong(images), strict=True))
    assert [tuple(v.shape) for v in first] == [(16, 3, 24, 24)] * 2


def test_a_cpu_steps_only_the_chosen_images_and_gets_the_blended_result() -> None:
    # On a CPU jitter and blur run on the chosen images only; on a GPU on all, blended.
    images = _images(3)
    engine = DeviceAugmentation(parse_pipelines([STRONG]), [0.5] * 3, [0.25] * 3)
    torch.manual_seed(11)
    selected = engine(images)
    for group in engine.groups:
        group.select_on_cpu = False
    torch.manual_seed(11)
    blended = engine(images)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(selected, blended, strict=True))
    assert not torch.allclose(selected[0], selected[1])


def test_views_without_crops_still_flip_and_jitter() -> None:
    images = _images(3)[:, :, :8, :8].contiguous()
    flip = parse_pipelines([{"rrc": {"enabled": False}, "crop_size": 8,
                             "horizontal_flip": {"prob": 1.0}}])
    (flipped,) = DeviceAugmentation(flip, [0.0] * 3, [1.0] * 3)(images)
    assert torch.allclose(flipped, (images.float() / 255).flip(-1), atol=1e-6)
    dim = parse_pipelines([{"rrc": {"enabled": False}, "crop_size": 8,
                            "color_jitter": {"prob": 1.0, "brightness": 0.5}}])
    (jittered,) = DeviceAugmentation(dim, [0.0] * 3, [1.0] * 3)(images)
    assert jittered.shape == images.shape and not torch.allclose(jittered, images.float() / 255)
