"""G-SimCLR's guided batch sampler: the constraint, fresh seeded orders, exact violation counts,
DDP shares, the false-negative diagnostic, and a guided training run end to end."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from fkt_plugin.data.samplers import GuidedBatchSampler
from fkt_plugin.errors import ConfigError


def _same_pairs(batches: list[list[int]], values: torch.Tensor) -> int:
    """Independent count: for each batch, pairs of images with equal values."""
    return sum(n * (n - 1) // 2 for batch in batches
               for n in Counter(values[batch].tolist()).values())


def _uneven_clusters(batch_size: int, batches: int, seed: int) -> torch.Tensor:
    """Clusters of uneven sizes, none larger than the number of batches."""
    rng = np.random.default_rng(seed)
    sizes, total = [], batch_size * batches
    while total > 0:
        size = int(min(total, rng.integers(1, batches + 1)))
        sizes.append(size)
        total -= size
    clusters = np.repeat(np.arange(len(sizes)), sizes)
    return torch.from_numpy(rng.permutation(clusters))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_cluster_shares_a_batch_when_every_cluster_fits(seed: int) -> None:
    clusters = _uneven_clusters(batch_size=16, batches=25, seed=seed)
    assert int(torch.bincount(clusters).max()) <= 25 and len(torch.unique(clusters)) >= 16
    sampler = GuidedBatchSampler(clusters, batch_size=16, seed=seed)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == 25 and all(len(b) == 16 for b in batches)
        assert sorted(itertools.chain(*batches)) == list(range(len(clusters)))
        assert _same_pairs(batches, clusters) == 0
        assert sampler.stats is not None and sampler.stats.same_cluster_pairs == 0


def test_orders_differ_between_epochs_and_repeat_for_a_seed() -> None:
    clusters = _uneven_clusters(batch_size=8, batches=12, seed=4)
    first, again, other = (GuidedBatchSampler(clusters, 8, seed=s) for s in (3, 3, 4))
    epochs = []
    for epoch in range(2):
        first.set_epoch(epoch)
        again.set_epoch(epoch)
        other.set_epoch(epoch)
        epochs.append(list(first))
        assert epochs[-1] == list(again)
        assert epochs[-1] != list(other)
    assert epochs[0] != epochs[1]


def test_violations_are_counted_exactly_where_the_constraint_cannot_hold() -> None:
    # 12 images, batches of 4 → 3 batches; cluster 0 has 6 images, so each batch must hold two
    # of them: 3 pairs at least, and the sampler reaches that minimum.
    clusters = torch.tensor([0] * 6 + [1] * 3 + [2] * 3)
    sampler = GuidedBatchSampler(clusters, batch_size=4, seed=0)
    batches = list(sampler)
    assert _same_pairs(batches, clusters) == 3 == sampler.stats.same_cluster_pairs
    # Two clusters for batches of 4: at least 2 x C(2, 2) = 2 pairs per batch.
    clusters = torch.tensor([0, 1] * 6)
    sampler = GuidedBatchSampler(clusters, batch_size=4, seed=1)
    batches = list(sampler)
    assert _same_pairs(batches, clusters) == 6 == sampler.stats.same_cluster_pairs


def test_ddp_shares_of_a_global_batch_are_disjoint_and_cover_it() -> None:
    clusters = _uneven_clusters(batch_size=12, batches=10, seed=5)
    world = 3
    global_sampler = GuidedBatchSampler(clusters, batch_size=4, seed=7, world_size=world)
    expected = global_sampler.global_batches(0)
    per_rank = [list(GuidedBatchSampler(clusters, batch_size=4, seed=7, rank=r,
                                        world_size=world)) for r in range(world)]
    assert all(len(batches) == len(expected) == 10 for batches in per_rank)
    for b, row in enumerate(expected.tolist()):
        shares = [set(per_rank[r][b]) for r in range(world)]
        assert all(len(share) == 4 for share in shares)
        assert set.union(*shares) == set(row) and sum(map(len, shares)) == len(row)
    # The constraint holds on the global batch.
    assert _same_pairs(expected.tolist(), clusters) == 0


def test_false_negative_share_against_an_independent_count() -> None:
    rng = np.random.default_rng(6)
    labels = torch.from_numpy(rng.integers(0, 5, 400))
    labels[::7] = -1  # unknown classes are left out of the share
    clusters = torch.from_numpy(rng.integers(0, 40, 400))
    sampler = GuidedBatchSampler(clusters, batch_size=20, seed=2, true_labels=labels)
    batches = list(sampler)
    same = total = 0
    for batch in batches:
        known = [labels[i].item() for i in batch if labels[i] >= 0]
        total += len(known) * (len(known) - 1) // 2
        same += sum(n * (n - 1) // 2 for n in Counter(known).values())
    assert sampler.stats.same_class_share == pytest.approx(same / total)
    counts = np.bincount(labels[labels >= 0].numpy())
    n = counts.sum()
    assert sampler.stats.random_same_class_share == pytest.approx(
        (counts * (counts - 1)).sum() / (n * (n - 1)))
    # Clusters that are the classes themselves leave no false negative at all.
    perfect = GuidedBatchSampler(torch.arange(100) % 10, batch_size=10, seed=0,
                                 true_labels=torch.arange(100) % 10)
    list(perfect)
    assert perfect.stats.same_class_share == 0.0


def test_guided_runs_need_a_pseudo_label_file_and_no_labelled_share(make_cfg) -> None:
    with pytest.raises(ConfigError, match="batch_sampler=guided needs data.pseudo_labels"):
        make_cfg("simclr", "++data.batch_sampler=guided")
    with pytest.raises(ConfigError, match="data.batch_sampler='stratified' is unknown; use one "
                                          "of random, guided"):
        make_cfg("simclr", "++data.batch_sampler=stratified")
    with pytest.raises(ConfigError, match="labelled_share=0.25 cannot be combined"):
        make_cfg("fkt_joint", "++data.batch_sampler=guided", "++data.pseudo_labels=x.npz",
                 "++data.labelled_share=0.25")


def test_a_guided_simclr_run_logs_and_writes_its_batch_statistics(fmnist_dir: Path,
                                                                   tmp_path: Path) -> None:
    from fkt_plugin.runner import train
    from fkt_plugin.transfer import cluster
    from tests.helpers import load_recipe, tiny_overrides

    train(load_recipe("simclr", [*tiny_overrides(fmnist_dir, tmp_path), "++name=teacher"]))
    labels = tmp_path / "k16.npz"
    cluster(OmegaConf.create({"run_dir": str(tmp_path / "teacher"), "k": 16,
                              "out": str(labels)}))
    with pytest.warns(UserWarning, match="k=16 clusters, fewer than the global batch of 64 "
                                         "images: every batch holds at least 96 same-cluster"):
        results = train(load_recipe("simclr", [
            *tiny_overrides(fmnist_dir, tmp_path), "++name=guided", "max_epochs=2",
            "++data.batch_sampler=guided", f"++data.pseudo_labels={labels}"]))
    guided = results["guided_batches"]
    assert len(guided["same_cluster_pairs_per_epoch"]) == 2
    # 1,260 pool images (1,400 less the 10% validation split) make 19 batches of 64.
    assert min(guided["same_cluster_pairs_per_epoch"]) >= 96 * 19
    assert 0 < guided["false_negative_share_random_batches"] < 0.2
    # The targets stay the real classes: 10, not the 16 clusters.
    assert len(results["test_confusion_matrix"]) == 10
    header = (tmp_path / "guided" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train_guided_violations", "train_false_negative_share",
            "train_false_negative_share_random"} <= set(header)
    assert json.loads((tmp_path / "guided" / "results.json").read_text())["guided_batches"]
