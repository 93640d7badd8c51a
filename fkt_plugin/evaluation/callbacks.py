"""Lightning callbacks of the evaluation: the test metrics of a training run, gathered from the
model's test steps, so that the method classes only compute class scores; and the per-epoch
statistics of guided batches."""

from __future__ import annotations

import math
from typing import Any, cast

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.trainer.states import TrainerFn

from fkt_plugin.evaluation.knn import KNNBank, KNNClassifier
from fkt_plugin.evaluation.metrics import classification_metrics, confusion, topk_accuracy


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


class OnlineKNN(Callback):
    """solo-learn's online kNN accuracy (``val_knn_acc1``, ``test_knn_acc1``) of a method's
    features, beside its classifier's.

    During training, the kNN votes with the features the epoch's labelled images had in their
    training steps (no extra pass). In a validation or test after training, it votes with the
    labelled training images encoded by the weights being scored (a reloaded best checkpoint's
    bank would otherwise hold another epoch's features). The method exposes what it encoded in
    ``supervised_feats``/``supervised_targets`` (a training step) and ``eval_feats`` (an
    evaluation step).

    Args:
        num_classes: Number of classes.
        k: Neighbours per vote.
        temperature: Vote weight temperature.
    """

    def __init__(self, num_classes: int, k: int, temperature: float) -> None:
        self.bank = KNNBank(num_classes, k, temperature)
        self.num_classes, self.k, self.temperature = num_classes, k, temperature
        self._knn: KNNClassifier | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.bank.reset()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        # BaseMethod's tensors (a LightningModule attribute reads as Tensor | Module to mypy).
        self.bank.add(cast(torch.Tensor, pl_module.supervised_feats),
                      cast(torch.Tensor, pl_module.supervised_targets))

    def on_validation_epoch_start(self, trainer: pl.Trainer,
                                  pl_module: pl.LightningModule) -> None:
        self._fit(trainer, pl_module)

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit(trainer, pl_module)

    def _fit(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._knn = (self.bank.classifier() if trainer.state.fn == TrainerFn.FITTING
                     else self._of_labelled_train(trainer, pl_module))

    @torch.no_grad()
    def _of_labelled_train(self, trainer: pl.Trainer,
                           pl_module: pl.LightningModule) -> KNNClassifier | None:
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "labelled_train_loader"):
            return self.bank.classifier()
        transform = datamodule.eval_transform.to(pl_module.device)
        feats, targets = [], []
        # In the run's precision (bf16-mixed, ...), as the validation steps that query it.
        with trainer.precision_plugin.forward_context():
            for _, images, labels in datamodule.labelled_train_loader():
                feats.append(pl_module(transform(images.to(pl_module.device)))["feats"].float())
                targets.append(labels.to(pl_module.device))
        if not feats:
            return None
        return KNNClassifier(self.num_classes, self.k, self.temperature).fit(
            torch.cat(feats), torch.cat(targets))

    def _log(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
             prefix: str) -> None:
        if self._knn is None:
            return
        _, targets = batch
        # In the run's precision, as the evaluation step that encoded the features.
        with trainer.precision_plugin.forward_context():
            scores = self._knn.scores(cast(torch.Tensor, pl_module.eval_feats))
        pl_module.log(f"{prefix}_knn_acc1", topk_accuracy(scores, targets, 1), on_epoch=True,
                      sync_dist=True, batch_size=len(targets), prog_bar=prefix == "val")

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                                outputs: Any, batch: Any, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        self._log(trainer, pl_module, batch, "val")

    def on_test_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                          outputs: Any, batch: Any, batch_idx: int,
                          dataloader_idx: int = 0) -> None:
        self._log(trainer, pl_module, batch, "test")
