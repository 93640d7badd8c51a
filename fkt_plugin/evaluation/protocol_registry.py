"""The evaluation protocols a recipe or command line names (``protocols=``, an arm's
``protocol``): :data:`PROTOCOLS`, the one list used to validate and to run them.

Frozen-feature protocols (linear and MLP probes, kNN) score a backbone's
:class:`FrozenFeatures`, selecting their setting on the validation split (or, for a run without
one, taking the single setting given); fine-tuning trains the whole network as a sibling run
(:func:`fkt_plugin.evaluation.protocols.finetune`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig

from fkt_plugin.config import plain_dict
from fkt_plugin.data import ImageDataset
from fkt_plugin.errors import ConfigError
from fkt_plugin.evaluation.knn import KNNClassifier
from fkt_plugin.evaluation.linear_probe import fit_linear_probe
from fkt_plugin.evaluation.metrics import topk_accuracy
from fkt_plugin.evaluation.mlp_probe import fit_mlp_probe
from fkt_plugin.registry import Registry


@dataclass
class FrozenFeatures:
    """Backbone features of the labelled training, validation and test images, with labels."""

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    dataset: ImageDataset
    # Labels the protocol uses: {"train", "val", "total"} (FKTDataModule.labels).
    labels: dict[str, int]


Scores = tuple[torch.Tensor, dict[str, Any]]
"""Test scores ``(N, C)`` and what the protocol selected (its ``val`` metrics among them)."""


@dataclass(frozen=True)
class Protocol:
    """An evaluation protocol.

    Attributes:
        name: What recipes and command lines call it.
        frozen: Scores frozen features (else it trains the network: fine-tuning).
        with_validation: Scores with a validation split to select on.
        without_validation: Scores for a run without one (None: the protocol cannot).
    """

    name: str
    frozen: bool
    with_validation: Callable[[FrozenFeatures, DictConfig], Scores] | None = None
    without_validation: Callable[[FrozenFeatures, DictConfig], Scores] | None = None

    def score(self, feats: FrozenFeatures, settings: DictConfig) -> Scores:
        """Test scores of a frozen-feature protocol.

        Raises:
            ConfigError: The run has no validation split and the protocol needs one, or more
                than one setting to choose among.
        """
        score = self.with_validation if len(feats.val[1]) else self.without_validation
        if score is None:
            raise ConfigError(f"the {self.name} protocol selects its epoch on validation, and "
                              "the run has no validation split (data.val_labels=none): use "
                              "linear or knn, or a run with data.val_labels=budget")
        return score(feats, settings)


def _linear(feats: FrozenFeatures, settings: DictConfig) -> Scores:
    (train_x, train_y), (val_x, val_y), (test_x, _) = feats.train, feats.val, feats.test
    probe = fit_linear_probe(train_x, train_y, val_x, val_y, feats.dataset.num_classes,
                             weight_decays=list(settings.weight_decays),
                             max_iter=settings.max_iter)
    return probe.scores(test_x), {"weight_decay": probe.weight_decay,
                                  "val": {"acc1": probe.val_acc1}}


def _linear_without_validation(feats: FrozenFeatures, settings: DictConfig) -> Scores:
    if len(settings.weight_decays) != 1:
        raise ConfigError(
            f"the run has no validation split (data.val_labels=none) to choose among "
            f"linear.weight_decays={list(settings.weight_decays)}: give one, e.g. "
            "linear.weight_decays=[1e-4]")
    (train_x, train_y), (test_x, _) = feats.train, feats.test
    probe = fit_linear_probe(train_x, train_y, train_x[:0], train_y[:0],
                             feats.dataset.num_classes,
                             weight_decays=list(settings.weight_decays),
                             max_iter=settings.max_iter)
    return probe.scores(test_x), {"weight_decay": probe.weight_decay, "val": None}


def _mlp(feats: FrozenFeatures, settings: DictConfig) -> Scores:
    (train_x, train_y), (val_x, val_y), (test_x, _) = feats.train, feats.val, feats.test
    mlp = fit_mlp_probe(train_x, train_y, val_x, val_y, feats.dataset.num_classes,
                        **plain_dict(settings))
    return mlp.scores(test_x), {"best_epoch": mlp.best_epoch, "val": {"acc1": mlp.val_acc1}}


def _knn_fit(feats: FrozenFeatures, settings: DictConfig) -> KNNClassifier:
    return KNNClassifier(feats.dataset.num_classes, settings.k, settings.temperature).fit(
        *feats.train)


def _knn(feats: FrozenFeatures, settings: DictConfig) -> Scores:
    knn = _knn_fit(feats, settings)
    val_acc = topk_accuracy(knn.scores(feats.val[0]), feats.val[1], 1).item()
    return knn.scores(feats.test[0]), {"k": settings.k, "temperature": settings.temperature,
                                       "val": {"acc1": val_acc}}


def _knn_without_validation(feats: FrozenFeatures, settings: DictConfig) -> Scores:
    return _knn_fit(feats, settings).scores(feats.test[0]), {
        "k": settings.k, "temperature": settings.temperature, "val": None}


PROTOCOLS: Registry[Protocol] = Registry("protocol")
"""Protocol name → :class:`Protocol` (``linear``, ``mlp``, ``knn``, ``finetune``)."""

for _protocol in (Protocol("linear", True, _linear, _linear_without_validation),
                  Protocol("mlp", True, _mlp),
                  Protocol("knn", True, _knn, _knn_without_validation),
                  Protocol("finetune", False)):
    PROTOCOLS.register(_protocol.name)(_protocol)
