"""Metrics on cases worked by hand, and each frozen-feature protocol on separable vs random
features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fkt_plugin.evaluation.knn import knn_scores
from fkt_plugin.evaluation.linear_probe import fit_linear_probe
from fkt_plugin.evaluation.metrics import classification_metrics, confusion, topk_accuracy
from fkt_plugin.evaluation.mlp_probe import fit_mlp_probe


def test_metrics_on_a_case_worked_by_hand() -> None:
    # class 0: 2 true, 1 predicted right; class 1: 2 true, both right, plus one false positive.
    metrics = classification_metrics(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 1]), 3)
    assert metrics["acc1"] == pytest.approx(0.75)
    assert metrics["precision_macro"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert metrics["recall_macro"] == pytest.approx((0.5 + 1 + 0) / 3)
    f1 = [2 * p * r / (p + r) if p + r else 0.0 for p, r in ((1, 0.5), (2 / 3, 1), (0, 0))]
    assert metrics["f1_macro"] == pytest.approx(sum(f1) / 3)
    assert "acc5" not in metrics and "kappa_quadratic" not in metrics


def test_quadratic_kappa_on_a_known_case() -> None:
    # 5 ordinal grades; kappa = 1 - sum(w*O) / sum(w*E), w_ij = (i-j)^2 / (K-1)^2.
    y_true = torch.tensor([0, 1, 2, 3, 4, 4, 2, 1])
    y_pred = torch.tensor([0, 2, 2, 3, 2, 4, 1, 1])
    k = 5
    observed = np.zeros((k, k))
    for t, p in zip(y_true.tolist(), y_pred.tolist(), strict=True):
        observed[t, p] += 1
    expected = np.outer(observed.sum(1), observed.sum(0)) / observed.sum()
    i, j = np.indices((k, k))
    weights = (i - j) ** 2 / (k - 1) ** 2
    by_hand = 1 - (weights * observed).sum() / (weights * expected).sum()
    metrics = classification_metrics(y_true, y_pred, k, ordinal=True)
    assert metrics["kappa_quadratic"] == pytest.approx(by_hand)
    perfect = classification_metrics(y_true, y_true, k, ordinal=True)
    assert perfect["kappa_quadratic"] == pytest.approx(1.0)


def test_top5_from_scores_and_confusion_orientation() -> None:
    scores = torch.eye(6)[[0, 1, 2, 3, 4, 5]]
    scores[0] = torch.tensor([0.0, 6, 5, 4, 3, 2])  # target 0 ranked last: not in the top 5
    targets = torch.arange(6)
    metrics = classification_metrics(targets, scores.argmax(1), 6, scores=scores)
    assert metrics["acc5"] == pytest.approx(5 / 6)
    matrix = confusion(targets, scores.argmax(1), 6)
    assert matrix[0][1] == 1 and matrix[1][0] == 0  # row = true class, column = predicted


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


def _linear(train, val, test) -> torch.Tensor:
    return fit_linear_probe(*train, *val, num_classes=5).scores(test[0])


def _mlp(train, val, test) -> torch.Tensor:
    return fit_mlp_probe(*train, *val, num_classes=5, hidden_dim=64, epochs=30,
                         batch_size=64).scores(test[0])


def _knn(train, val, test) -> torch.Tensor:
    return knn_scores(*train, test[0], num_classes=5, k=20, temperature=0.1)


@pytest.mark.parametrize("protocol", [_linear, _mlp, _knn], ids=["linear", "mlp", "knn"])
@pytest.mark.parametrize(("separable", "low", "high"), [(True, 0.85, 1.0), (False, 0.0, 0.35)])
def test_protocol_accuracy_follows_the_features(protocol, separable: bool, low: float,
                                                high: float) -> None:
    gen = torch.Generator().manual_seed(0)
    train, val, test = (_features(separable, n, gen) for n in (500, 200, 1000))
    scores = protocol(train, val, test)
    assert scores.shape == (1000, 5)
    acc = (scores.argmax(1) == test[1]).float().mean().item()
    assert low <= acc <= high


def test_knn_scores_rank_the_vote() -> None:
    bank = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    labels = torch.tensor([2, 2, 0])
    scores = knn_scores(bank, labels, torch.tensor([[1.0, 0.05]]), num_classes=3, k=3,
                        temperature=0.1)
    assert scores.argmax(1).item() == 2
    assert scores[0].topk(2).indices.tolist() == [2, 0]  # class 1 has no neighbour: last


def test_a_confusion_matrix_of_a_thousand_classes_stays_small(tmp_path) -> None:
    from PIL import Image

    from fkt_plugin.evaluation.plots import MAX_FIGURE_INCHES, plot_confusion_matrix

    counts = [[1 if i == j else 0 for j in range(1000)] for i in range(1000)]
    path = plot_confusion_matrix(counts, [f"cluster {i}" for i in range(1000)],
                                 tmp_path / "cm.png")
    with Image.open(path) as image:
        assert max(image.size) <= MAX_FIGURE_INCHES * 120 * 1.2  # dpi 120, tight margins
