"""The one kNN: the vote, k clamped to a small bank, and the training-time bank."""

from __future__ import annotations

import pytest
import torch

from fkt_plugin.evaluation.knn import KNNBank, KNNClassifier


def test_k_larger_than_the_bank_is_clamped_with_a_warning() -> None:
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
    with pytest.warns(UserWarning, match="knn k=20 is larger than the 3 labelled images"):
        knn = KNNClassifier(num_classes=2, k=20).fit(bank, torch.tensor([0, 1, 0]))
    scores = knn.scores(torch.tensor([[1.0, 0.05], [0.05, 1.0]]))
    assert scores.argmax(1).tolist() == [0, 1]


def test_the_bank_keeps_only_labelled_rows_and_resets() -> None:
    bank = KNNBank(num_classes=2, k=1, temperature=0.1)
    assert bank.classifier() is None
    bank.add(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, -1]))
    bank.add(torch.tensor([[0.0, 2.0]]), torch.tensor([1]))
    knn = bank.classifier()
    assert knn is not None and knn.bank_targets is not None
    assert knn.bank_targets.tolist() == [0, 1]
    # The unlabelled row (0, 1) is not in the bank: a query at it finds the labelled (0, 2).
    assert knn.scores(torch.tensor([[0.0, 1.0]])).argmax(1).tolist() == [1]
    bank.reset()
    bank.add(torch.ones(2, 2), torch.tensor([-1, -1]))
    assert bank.classifier() is None
