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


def test_the_final_knn_scores_use_the_reloaded_weights(make_cfg) -> None:
    """After training, val/test kNN of the selected (reloaded) checkpoint vote with that
    checkpoint's features of the labelled training images, not with the last epoch's bank."""
    import numpy as np
    from sklearn.neighbors import KNeighborsClassifier

    from fkt_plugin.methods import METHODS
    from fkt_plugin.run_dir import RunDirectory
    from fkt_plugin.runner import prepare, train

    cfg = make_cfg("supervised", "max_epochs=3", "knn_eval.k=1", "optimizer.lr=0.3")
    results = train(cfg.copy())
    cfg, _, datamodule = prepare(cfg)
    model = METHODS[cfg.method](cfg)
    best = torch.load(RunDirectory.of(cfg).path / "checkpoints" / "best.ckpt", map_location="cpu",
                      weights_only=False)
    model.load_state_dict(best["state_dict"])
    model.eval()

    def features(split) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            x = datamodule.eval_transform(split.read(slice(None)))
            return model(x)["feats"].numpy(), split.targets.numpy()

    bank_x, bank_y = features(datamodule.labelled_train)
    val_x, val_y = features(datamodule.val)
    oracle = KNeighborsClassifier(n_neighbors=1, metric="cosine").fit(bank_x, bank_y)
    expected = float((oracle.predict(val_x) == val_y).mean())
    assert results["val"]["knn_acc1"] == pytest.approx(expected, abs=1e-6)
