"""Weighted k-nearest-neighbour classification of features (lightly's ``knn_predict``, the
InstDisc voting rule: neighbours vote with weight ``exp(cosine / temperature)``).

:class:`KNNClassifier` is the one kNN of the package: the ``knn`` protocol of ``fkt-eval`` fits it
on frozen features, and :class:`KNNBank` fits it during training on the features of the
labelled images each epoch has seen (solo-learn's and lightly's online kNN).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from lightly.utils.benchmarking import knn_predict


class KNNClassifier:
    """kNN over an ``(N, D)`` bank of labelled features.

    Args:
        num_classes: Number of classes.
        k: Neighbours per vote; clamped (with a warning) to the bank's size.
        temperature: Vote weight temperature.
        batch_size: Queries per similarity matrix, which is ``(batch_size, N)``.
    """

    def __init__(self, num_classes: int, k: int = 20, temperature: float = 0.07,
                 batch_size: int = 1024) -> None:
        self.num_classes = num_classes
        self.k = k
        self.temperature = temperature
        self.batch_size = batch_size
        self.bank: torch.Tensor | None = None
        self.bank_targets: torch.Tensor | None = None

    def fit(self, feats: torch.Tensor, targets: torch.Tensor) -> KNNClassifier:
        """Stores L2-normalised ``(N, D)`` features and their ``(N,)`` labels.

        Raises:
            ValueError: The bank is empty.
        """
        if len(targets) == 0:
            raise ValueError("the kNN bank is empty: no labelled feature to vote with")
        if self.k > len(targets):
            warnings.warn(f"knn k={self.k} is larger than the {len(targets)} labelled images of "
                          f"the bank; using k={len(targets)}", stacklevel=2)
        self.bank = F.normalize(feats, dim=1).T.contiguous()
        self.bank_targets = targets
        return self

    @torch.no_grad()
    def scores(self, query: torch.Tensor) -> torch.Tensor:
        """Class scores ``(M, C)`` of ``(M, D)`` queries: minus each class's rank in the vote (0
        for the winner), so ``argmax`` gives the prediction and ``topk`` the runners-up."""
        if self.bank is None or self.bank_targets is None:
            raise RuntimeError("KNNClassifier.scores before fit")
        k = min(self.k, len(self.bank_targets))
        ranks = torch.arange(self.num_classes, dtype=torch.float32, device=query.device)
        chunks = []
        for start in range(0, len(query), self.batch_size):
            normalised = F.normalize(query[start:start + self.batch_size], dim=1)
            order = knn_predict(normalised, self.bank, self.bank_targets, self.num_classes, k,
                                self.temperature)
            chunks.append(torch.empty(order.shape, device=query.device).scatter_(
                1, order, -ranks.expand(order.shape)))
        return torch.cat(chunks)


def knn_scores(train_x: torch.Tensor, train_y: torch.Tensor, query_x: torch.Tensor,
               num_classes: int, k: int = 20, temperature: float = 0.07,
               batch_size: int = 1024) -> torch.Tensor:
    """Class scores ``(M, C)`` of ``(M, D)`` queries against ``(N, D)`` labelled features
    (:meth:`KNNClassifier.scores`)."""
    return KNNClassifier(num_classes, k, temperature, batch_size).fit(train_x, train_y).scores(
        query_x)


class KNNBank:
    """Training features collected during an epoch, for a kNN evaluation at its end.

    :meth:`add` keeps every row with its target on the device (no host synchronisation in the
    training step); :meth:`classifier` keeps the labelled rows, once per evaluation. The bank
    holds ``N x D`` features of one epoch's training images.

    Args:
        num_classes: Number of classes.
        k: Neighbours per vote.
        temperature: Vote weight temperature.
    """

    def __init__(self, num_classes: int, k: int, temperature: float) -> None:
        self.num_classes = num_classes
        self.k = k
        self.temperature = temperature
        self._feats: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []

    def reset(self) -> None:
        """Forgets the features (at the start of a training epoch)."""
        self._feats.clear()
        self._targets.clear()

    def add(self, feats: torch.Tensor, targets: torch.Tensor) -> None:
        """Adds ``(B, D)`` features and their ``(B,)`` targets (-1: unlabelled, left out later)."""
        self._feats.append(feats.detach())
        self._targets.append(targets)

    def classifier(self) -> KNNClassifier | None:
        """A :class:`KNNClassifier` on the labelled rows collected so far (None if there is
        none)."""
        if not self._feats:
            return None
        feats, targets = torch.cat(self._feats), torch.cat(self._targets)
        labelled = targets >= 0
        if not bool(labelled.any()):
            return None
        return KNNClassifier(self.num_classes, self.k, self.temperature).fit(
            feats[labelled], targets[labelled])
