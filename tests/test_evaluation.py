"""Metrics on a known case, and the linear probe on separable vs random features."""

from __future__ import annotations

import pytest
import torch

from fkt_plugin.evaluation.linear_probe import evaluate_probe, fit_linear_probe
from fkt_plugin.evaluation.metrics import classification_metrics, topk_accuracy


def test_metrics_on_a_case_worked_by_hand() -> None:
    # class 0: 2 true, 1 predicted right; class 1: 2 true, both right, plus one false positive.
    metrics = classification_metrics(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 1]), 3)
    assert metrics["acc1"] == pytest.approx(0.75)
    assert metrics["precision_macro"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert metrics["recall_macro"] == pytest.approx((0.5 + 1 + 0) / 3)


def test_topk_accuracy() -> None:
    logits = torch.tensor([[0.1, 0.5, 0.4], [0.9, 0.02, 0.08]])
    targets = torch.tensor([2, 1])
    assert topk_accuracy(logits, targets, 1).item() == 0.0
    assert topk_accuracy(logits, targets, 2).item() == 0.5


def _features(separable: bool, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.randint(0, 5, (n,), generator=gen)
    x = torch.randn(n, 16, generator=gen)
    if separable:
        x[torch.arange(n), y] += 4.0
    return x, y


@pytest.mark.parametrize(("separable", "low", "high"), [(True, 0.9, 1.0), (False, 0.0, 0.35)])
def test_linear_probe_accuracy_follows_the_features(separable: bool, low: float,
                                                    high: float) -> None:
    gen = torch.Generator().manual_seed(0)
    train, val, test = (_features(separable, n, gen) for n in (500, 200, 1000))
    probe = fit_linear_probe(*train, *val, num_classes=5)
    acc = evaluate_probe(probe, *test, num_classes=5)["acc1"]
    assert low <= acc <= high
