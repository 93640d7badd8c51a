"""Distance correlation against the dcor package (the oracle) and on its defining properties;
the variance hinge against its formula."""

from __future__ import annotations

import dcor
import numpy as np
import pytest
import torch

from fkt_plugin.errors import ConfigError
from fkt_plugin.losses import distance_correlation, variance_hinge


def _pair(n: int, d1: int, d2: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d1, generator=gen)
    # y depends on x non-linearly (dCor ~0.3-0.6), plus noise
    y = x[:, :1] ** 2 + 0.5 * torch.randn(n, d2, generator=gen)
    return x, y


@pytest.mark.parametrize(("n", "d1", "d2"), [(8, 3, 2), (64, 10, 4), (200, 784, 32)])
def test_matches_the_dcor_package(n: int, d1: int, d2: int) -> None:
    x, y = _pair(n, d1, d2, seed=n)
    expected = dcor.distance_correlation(x.double().numpy(), y.double().numpy())
    assert distance_correlation(x, y).item() == pytest.approx(expected, abs=1e-5)
    independent = torch.randn(n, d2, generator=torch.Generator().manual_seed(99))
    expected = dcor.distance_correlation(x.double().numpy(), independent.double().numpy())
    assert distance_correlation(x, independent).item() == pytest.approx(expected, abs=1e-5)


def test_is_computed_in_float32_under_bf16_autocast() -> None:
    # Under autocast (how bf16-mixed training calls it) the result is the float32 dCor of the
    # given values: with an offset of 10 (embeddings are rarely centred), distances from bf16
    # products were 0.13 off.
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.normal(size=(256, 48))).float() + 10
    y = (x[:, :16] + torch.from_numpy(rng.normal(size=(256, 16))).float()).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = distance_correlation(x, y)
    assert value.dtype == torch.float32
    expected = dcor.distance_correlation(x.double().numpy(), y.double().numpy())
    assert float(value) == pytest.approx(expected, abs=1e-5)


def test_image_batches_are_flattened_per_row() -> None:
    x, y = _pair(32, 48, 5, seed=3)
    images = x.view(32, 3, 4, 4)
    expected = dcor.distance_correlation(x.double().numpy(), y.double().numpy())
    assert distance_correlation(images, y).item() == pytest.approx(expected, abs=1e-5)


def test_is_one_with_itself_and_invariant_to_scaling_translation_rotation() -> None:
    x, y = _pair(96, 12, 6, seed=5)
    assert distance_correlation(x, x).item() == pytest.approx(1.0, abs=1e-5)
    reference = distance_correlation(x, y).item()
    rotation, _ = torch.linalg.qr(torch.randn(12, 12, generator=torch.Generator().manual_seed(7)))
    for changed in (3.7 * x, x + 5.0, x @ rotation, -0.2 * (x @ rotation) - 1.0):
        assert distance_correlation(changed, y).item() == pytest.approx(reference, abs=1e-5)
        assert distance_correlation(y, changed).item() == pytest.approx(reference, abs=1e-5)


def test_is_near_zero_for_independent_samples_at_large_batch() -> None:
    gen = torch.Generator().manual_seed(11)
    small = [distance_correlation(torch.randn(16, 8, generator=gen),
                                  torch.randn(16, 8, generator=gen)).item() for _ in range(5)]
    large = [distance_correlation(torch.randn(2048, 8, generator=gen),
                                  torch.randn(2048, 8, generator=gen)).item() for _ in range(5)]
    # The V-statistic is biased upwards, the more so the smaller B: ~0.8 at B = 16, ~0.12 at
    # 2,048 for these samples.
    assert max(large) < 0.15 and np.mean(large) < np.mean(small) / 3


def test_constant_inputs_give_zero_with_finite_gradients() -> None:
    x = torch.randn(16, 5, requires_grad=True)
    constant = torch.ones(16, 3, requires_grad=True)
    value = distance_correlation(x, constant)
    value.backward()
    assert value.item() == 0.0
    assert torch.isfinite(x.grad).all() and torch.isfinite(constant.grad).all()
    # Repeated rows (zero distances off the diagonal) keep the gradient finite too.
    repeated = torch.randn(4, 5).repeat(4, 1).requires_grad_(True)
    distance_correlation(repeated, torch.randn(16, 2)).backward()
    assert torch.isfinite(repeated.grad).all()


def test_gradient_increases_dependence() -> None:
    x, y = _pair(64, 4, 4, seed=13)
    y = y.clone().requires_grad_(True)
    before = distance_correlation(x, y)
    before.backward()
    with torch.no_grad():
        after = distance_correlation(x, y + 0.5 * y.grad / y.grad.norm())
    assert after.item() > before.item()


def test_bad_batches_are_refused_with_the_sizes() -> None:
    with pytest.raises(ConfigError, match="at least 4 images, got 3; raise optimizer.batch_size"):
        distance_correlation(torch.randn(3, 2), torch.randn(3, 2))
    with pytest.raises(ConfigError, match="batches of 8 and 6 rows"):
        distance_correlation(torch.randn(8, 2), torch.randn(6, 2))


def test_variance_hinge_is_the_mean_shortfall_of_each_dimension_std() -> None:
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(500, 3, generator=gen) * torch.tensor([0.25, 1.0, 3.0])
    std = z.std(dim=0)
    expected = (torch.clamp(1.0 - std, min=0)).mean()
    assert variance_hinge(z).item() == pytest.approx(expected.item(), abs=1e-3)
    collapsed = torch.zeros(10, 4, requires_grad=True)
    value = variance_hinge(collapsed)
    value.backward()
    assert value.item() == pytest.approx(1.0, abs=0.02) and torch.isfinite(collapsed.grad).all()
