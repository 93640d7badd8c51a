"""Classification metrics: top-k accuracy on logits, macro precision/recall/F1 on predictions."""

from __future__ import annotations

import torch
from sklearn.metrics import accuracy_score, precision_recall_fscore_support


def topk_accuracy(logits: torch.Tensor, targets: torch.Tensor, k: int) -> torch.Tensor:
    """Share of rows whose target is among the ``k`` highest logits.

    Shapes:
        logits: ``(B, C)``; targets: ``(B,)``; returns a scalar tensor.
    """
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices
    return (top == targets[:, None]).any(dim=1).float().mean()


def classification_metrics(targets: torch.Tensor, predicted: torch.Tensor,
                           num_classes: int) -> dict[str, float]:
    """Accuracy and macro-averaged precision, recall and F1 over all ``num_classes`` classes.

    A class never predicted counts as precision 0 (scikit-learn's ``zero_division=0``).
    """
    y_true, y_pred = targets.numpy(), predicted.numpy()
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=list(range(num_classes)), average="macro", zero_division=0
    )
    return {"acc1": float(accuracy_score(y_true, y_pred)), "precision_macro": float(precision),
            "recall_macro": float(recall), "f1_macro": float(f1)}
