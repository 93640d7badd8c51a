"""Each MV-MR representation on constructed images, against independent computations (scipy's
Sobel and neighbourhood filters) where one exists."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from scipy import ndimage

from fkt_plugin.backbones import build_backbone
from fkt_plugin.errors import CheckpointError, ConfigError, MissingDependencyError, UnknownNameError
from fkt_plugin.representations import REPRESENTATIONS, build_representation


def _edge(vertical: bool, size: int = 16) -> torch.Tensor:
    """A (1, 1, size, size) image, dark on one side of a straight edge, bright on the other."""
    image = torch.zeros(size, size)
    if vertical:
        image[:, size // 2:] = 1.0
    else:
        image[size // 2:, :] = 1.0
    return image[None, None]


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="unknown representation 'sift'; known "
                                               "representations: hog, local_std, pixels"):
        build_representation("sift")
    with pytest.raises(ConfigError, match="representation 'hog'.*unexpected keyword"):
        build_representation("hog", orientations=9)


def test_pixels_are_flattened_and_pooled_down_to_the_size() -> None:
    gen = torch.Generator().manual_seed(0)
    small = torch.randn(2, 1, 28, 28, generator=gen)
    assert torch.equal(build_representation("pixels")(small), small.flatten(1))
    large = torch.randn(2, 3, 64, 64, generator=gen)
    expected = large.view(2, 3, 32, 2, 32, 2).mean(dim=(3, 5)).flatten(1)
    assert torch.allclose(build_representation("pixels")(large), expected, atol=1e-6)


@pytest.mark.parametrize(("vertical", "angle"), [(True, 0.0), (False, 90.0)])
def test_hog_of_an_edge_puts_its_mass_in_the_bins_of_the_gradient_direction(
        vertical: bool, angle: float) -> None:
    hog = build_representation("hog")  # 24 bins of 7.5 degrees, 8x8 cells
    table = hog(_edge(vertical)).view(1, 24, 2, 2)
    per_bin = table.sum(dim=(0, 2, 3))
    expected_bin = int(angle / 7.5)
    # A vertical edge has a horizontal gradient (orientation 0); a horizontal edge, 90 degrees.
    assert per_bin[expected_bin] / per_bin.sum() > 0.999


def test_hog_cell_totals_are_the_mean_gradient_magnitude_of_scipy_sobel() -> None:
    gen = np.random.default_rng(3)
    image = ndimage.gaussian_filter(gen.random((2, 32, 32)), 1.5).astype(np.float32)
    table = build_representation("hog", bins=24, pool=8)(torch.from_numpy(image)[None])
    cells = table.view(1, 2, 24, 4, 4).sum(2)[0].numpy()  # (C, 4, 4): all bins of a cell
    # kornia's normalised Sobel is scipy's divided by 8; borders replicate ('nearest'). Per
    # channel: scipy's Sobel of a 3-D array would also smooth across the channels.
    gx = np.stack([ndimage.sobel(channel, axis=1, mode="nearest") / 8 for channel in image])
    gy = np.stack([ndimage.sobel(channel, axis=0, mode="nearest") / 8 for channel in image])
    magnitude = np.sqrt(gx ** 2 + gy ** 2)
    expected = magnitude.reshape(2, 4, 8, 4, 8).mean(axis=(2, 4))
    assert np.allclose(cells, expected, rtol=1e-4, atol=1e-6)


def test_hog_diagonal_edges_share_their_mass_between_neighbouring_bins() -> None:
    y, x = np.mgrid[0:24, 0:24]
    # A ramp along 50 degrees: between bins 6 (45) and 7 (52.5), two thirds in bin 7.
    theta = np.deg2rad(50.0)
    ramp = (np.cos(theta) * x + np.sin(theta) * y).astype(np.float32)
    table = build_representation("hog", pool=8)(torch.from_numpy(ramp)[None, None])
    interior = table.view(24, 3, 3)[:, 1, 1]  # the middle cell, away from the borders
    assert interior[7] / (interior[6] + interior[7]) == pytest.approx(2 / 3, abs=1e-3)
    assert (interior[6] + interior[7]) / interior.sum() == pytest.approx(1.0, abs=1e-5)
    assert interior.sum() == pytest.approx(1.0, abs=1e-4)  # the ramp's slope


def test_local_std_matches_a_nan_aware_neighbourhood_filter() -> None:
    gen = np.random.default_rng(4)
    image = gen.random((1, 2, 9, 11)).astype(np.float32)
    ours = build_representation("local_std")(torch.from_numpy(image)).view(2, 9, 11).numpy()
    # Neighbourhoods hold only pixels inside the image: NaN padding, ignored by nanstd.
    expected = np.stack([ndimage.generic_filter(channel, np.nanstd, size=3, mode="constant",
                                                cval=np.nan) for channel in image[0]])
    assert np.allclose(ours, expected, atol=1e-5)
    flat = build_representation("local_std")(torch.ones(1, 1, 5, 5))
    assert torch.allclose(flat, torch.zeros_like(flat), atol=1e-3)


@pytest.mark.parametrize("name", ["pixels", "hog", "local_std"])
def test_representations_are_float32_and_unchanged_under_bf16_autocast(name: str) -> None:
    # bf16-mixed training computes them inside autocast (the hog's scatter into a float32 table
    # once failed there on bf16 gradients).
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    module = REPRESENTATIONS[name]()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = module(images)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, module(images))


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ConfigError, match="local_std size=4 must be an odd int"):
        build_representation("local_std", size=4)
    with pytest.raises(ConfigError, match="hog pool=32 is larger than the 16x16 images"):
        build_representation("hog", pool=32)(_edge(True))


def test_scattering_shape_and_the_message_without_kymatio(monkeypatch) -> None:
    pytest.importorskip("kymatio")  # an optional extra; its absence is tested below
    out = build_representation("scattering")(torch.randn(2, 1, 28, 28))
    # J=2, L=8: 1 + J L + L^2 J (J - 1) / 2 = 81 channels at 28 / 2^J = 7 px.
    assert out.shape == (2, 81 * 7 * 7)
    monkeypatch.setitem(sys.modules, "kymatio.scattering2d.frontend.torch_frontend", None)
    with pytest.raises(MissingDependencyError, match="pip install kymatio"):
        build_representation("scattering")


def test_teacher_embedding_is_the_frozen_backbone_of_the_checkpoint(tmp_path) -> None:
    net, _ = build_backbone("small_cnn", in_channels=1, width=4)
    path = tmp_path / "teacher.pt"
    torch.save(net.state_dict(), path)
    teacher = build_representation("teacher", checkpoint=str(path), backbone="small_cnn",
                                   backbone_kwargs={"width": 4}, in_channels=1)
    teacher.train()
    x = torch.randn(5, 1, 28, 28)
    net.eval()
    assert torch.allclose(teacher(x), net(x), atol=1e-6)
    assert not teacher.net.training
    assert not any(p.requires_grad for p in teacher.parameters())
    with pytest.raises(CheckpointError, match="another backbone"):
        build_representation("teacher", checkpoint=str(path), backbone="small_cnn",
                             backbone_kwargs={"width": 8}, in_channels=1)
    partial = {k: v for k, v in net.state_dict().items() if not k.startswith("features.0.")}
    torch.save(partial, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match="does not fill the small_cnn backbone: .*missing"):
        build_representation("teacher", checkpoint=str(tmp_path / "partial.pt"),
                             backbone="small_cnn", backbone_kwargs={"width": 4}, in_channels=1)
    with pytest.raises(ConfigError, match="needs method_kwargs.teacher.run_dir"):
        build_representation("teacher", in_channels=1)


def test_every_registered_representation_is_tested_here() -> None:
    assert set(REPRESENTATIONS) == {"pixels", "hog", "local_std", "scattering", "teacher"}
