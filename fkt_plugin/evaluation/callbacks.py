"""Lightning callbacks of the evaluation: the test metrics of a training run, gathered from the
model's test steps, so that the method classes only compute class scores; and the per-epoch
statistics of guided batches."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from fkt_plugin.evaluation.metrics import classification_metrics, confusion


class TestMetrics(Callback):
    """Collects the class scores each test step returns (``{"logits": (B, C)}``) with the batch's
    targets, and computes :func:`classification_metrics` and the confusion matrix at the end.

    Args:
        num_classes: Number of classes.
        ordinal: Whether the classes are ordered grades (adds quadratic weighted kappa).

    Attributes:
        metrics: The test metrics after ``trainer.test``.
        confusion: ``(C, C)`` counts, row = true class.
    """

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, num_classes: int, ordinal: bool = False) -> None:
        self.num_classes = num_classes
        self.ordinal = ordinal
        self._scores: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []
        self.metrics: dict[str, float] = {}
        self.confusion: list[list[int]] = []

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._scores.clear()
        self._targets.clear()

    def on_test_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                          outputs: Any, batch: Any, batch_idx: int,
                          dataloader_idx: int = 0) -> None:
        self._scores.append(outputs["logits"].detach().float().cpu())
        self._targets.append(batch[1].cpu())

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        scores, targets = torch.cat(self._scores), torch.cat(self._targets)
        predicted = scores.argmax(1)
        self.metrics = classification_metrics(targets, predicted, self.num_classes,
                                              scores=scores, ordinal=self.ordinal)
        self.confusion = confusion(targets, predicted, self.num_classes)


class GuidedBatchLog(Callback):
    """Logs, after every training epoch with guided batches, the epoch's same-cluster pairs
    (``train_guided_violations``) and the share of same-class pairs among the pairs of labelled
    images in a batch, the false negatives NT-Xent pushes apart, for these batches
    (``train_false_negative_share``) and for uniformly random ones
    (``train_false_negative_share_random``)."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning sets trainer.datamodule when fit is given one.
        sampler = getattr(getattr(trainer, "datamodule", None), "guided_sampler", None)
        stats = None if sampler is None else sampler.stats
        if stats is None:
            return
        values = {"train_guided_violations": float(stats.same_cluster_pairs),
                  "train_false_negative_share": stats.same_class_share,
                  "train_false_negative_share_random": stats.random_same_class_share}
        pl_module.log_dict({k: v for k, v in values.items() if not math.isnan(v)},
                           on_epoch=True, on_step=False)
