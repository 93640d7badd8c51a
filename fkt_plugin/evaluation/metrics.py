"""Classification metrics: top-k accuracy, macro precision/recall/F1, quadratic weighted kappa,
and the confusion matrix, computed with scikit-learn where it has them."""

from __future__ import annotations

import torch
from sklearn.metrics import (
    accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    precision_recall_fscore_support,
)


def topk_accuracy(logits: torch.Tensor, targets: torch.Tensor, k: int) -> torch.Tensor:
    """Share of rows whose target is among the ``k`` highest logits.

    Shapes:
        logits: ``(B, C)``; targets: ``(B,)``; returns a scalar tensor.
    """
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices
    return (top == targets[:, None]).any(dim=1).float().mean()


def classification_metrics(targets: torch.Tensor, predicted: torch.Tensor, num_classes: int,
                           scores: torch.Tensor | None = None,
                           ordinal: bool = False) -> dict[str, float]:
    """Accuracy and macro-averaged precision, recall and F1 over all ``num_classes`` classes.

    A class never predicted counts as precision 0 (scikit-learn's ``zero_division=0``).

    Args:
        targets: ``(N,)`` true classes.
        predicted: ``(N,)`` predicted classes.
        num_classes: Number of classes (classes absent from both still count in the macro mean).
        scores: Optional ``(N, C)`` class scores; with 5 or more classes, adds ``acc5``.
        ordinal: Whether the classes are ordered grades (e.g. a disease scale); adds
            ``kappa_quadratic``, Cohen's kappa with quadratic weights.
    """
    y_true, y_pred = targets.cpu().numpy(), predicted.cpu().numpy()
    labels = list(range(num_classes))
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average="macro", zero_division=0
    )
    metrics = {"acc1": float(accuracy_score(y_true, y_pred)), "precision_macro": float(precision),
               "recall_macro": float(recall), "f1_macro": float(f1)}
    if scores is not None and num_classes >= 5:
        metrics["acc5"] = float(topk_accuracy(scores.float().cpu(), targets.cpu(), 5))
    if ordinal:
        metrics["kappa_quadratic"] = float(
            cohen_kappa_score(y_true, y_pred, labels=labels, weights="quadratic")
        )
    return metrics


def confusion(targets: torch.Tensor, predicted: torch.Tensor, num_classes: int) -> list[list[int]]:
    """``(C, C)`` counts: row = true class, column = predicted class."""
    matrix = confusion_matrix(targets.cpu().numpy(), predicted.cpu().numpy(),
                              labels=list(range(num_classes)))
    return matrix.tolist()
