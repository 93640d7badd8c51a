"""Training batch samplers: seeded per epoch and split across processes (DDP): uniform batches
with an optional labelled share, and G-SimCLR's guided batches (no two images of one cluster in a
batch).

Every process draws the same global batches (one generator seeded with ``seed + epoch``) and keeps
its own share, so that ``world_size`` processes with ``batch_size`` images each train on the same
global batches, of ``world_size * batch_size`` images, that one process would.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import Sampler


class TrainBatchSampler(Sampler[list[int]]):
    """Shuffled training batches of one process, optionally with a fixed labelled share.

    With ``labelled_share=None`` an epoch is one shuffled pass over the pool. With a share, each
    batch takes ``round(share * batch_size)`` images from a reshuffled cycle over the labelled
    images and the rest from a shuffled pass over the whole pool (the labelled/unlabelled batch
    split of semi-supervised methods such as FixMatch): with few labels, uniform batches hold
    almost none (1% labels, batch 256: ~2.6), so a joint method's supervised term would see each
    labelled image once per epoch. An epoch is still one pass over the pool.

    Each process's batch starts with its equal part of the labelled share.

    Args:
        targets: ``(N,)`` targets of the pool; -1 marks an unlabelled image.
        batch_size: Images per batch of one process.
        labelled_share: Share of each batch taken from the labelled images, in (0, 1], or None.
        drop_last: Drop the last partial global batch.
        seed: Seed of the shuffles; the epoch is added to it (:meth:`set_epoch`).
        rank: This process's index in ``[0, world_size)``.
        world_size: Number of processes.

    Raises:
        ValueError: The pool holds no labelled image while a labelled share is asked for, or
            fewer images than processes.
    """

    def __init__(self, targets: torch.Tensor, batch_size: int,
                 labelled_share: float | None = None, drop_last: bool = True, seed: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} must lie in [0, world_size={world_size})")
        if len(targets) < world_size:
            raise ValueError(f"{len(targets)} training images cannot be shared by {world_size} "
                             "processes; use fewer devices")
        self.labelled = (targets >= 0).nonzero().flatten()
        if labelled_share is not None and len(self.labelled) == 0:
            raise ValueError("data.labelled_share needs labelled images, and the pool has none")
        self.size = len(targets)
        self.batch_size = batch_size
        self.per_batch = 0 if labelled_share is None else max(1, round(labelled_share
                                                                        * batch_size))
        self.from_pool = batch_size - self.per_batch
        # Pool images a global batch advances by; a batch made only of labelled images still
        # advances by its size, so that an epoch keeps its length.
        self.step = (self.from_pool or batch_size) * world_size
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0
        self.rank = rank
        self.world_size = world_size

    def set_epoch(self, epoch: int) -> None:
        """Reshuffles for ``epoch`` (Lightning calls it at the start of every epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size // self.step if self.drop_last else -(-self.size // self.step)

    def _labelled_cycle(self, generator: torch.Generator) -> Iterator[int]:
        while True:
            yield from self.labelled[torch.randperm(len(self.labelled),
                                                    generator=generator)].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        pool = torch.randperm(self.size, generator=generator).tolist()
        labelled = self._labelled_cycle(generator)
        for b in range(len(self)):
            # Every process walks the same global batch and keeps its own slice of each part.
            shared = [next(labelled) for _ in range(self.per_batch * self.world_size)]
            mine = shared[self.rank * self.per_batch:(self.rank + 1) * self.per_batch]
            if self.from_pool:
                # Strided, so that a short last batch still gives every process an image.
                mine += pool[b * self.step:(b + 1) * self.step][self.rank::self.world_size]
            yield mine


@dataclass(frozen=True)
class BatchPairStats:
    """Pair counts of one epoch's global batches.

    Attributes:
        same_cluster_pairs: Pairs of images of one cluster that share a batch (G-SimCLR's
            constraint broken).
        same_class_share: Among pairs of images with a true label that share a batch, the share
            whose labels are equal: the false negatives NT-Xent pushes apart (NaN without
            labels).
        random_same_class_share: The same share expected of uniformly random batches.
    """

    same_cluster_pairs: int
    same_class_share: float
    random_same_class_share: float


def _pairs_within(batch_ids: torch.Tensor, values: torch.Tensor, num_values: int) -> int:
    """Pairs of equal values within each row of ``batch_ids`` (indices into ``values``; -1
    entries and negative values ignored), summed over rows: one bincount, no Python loop."""
    rows = torch.arange(len(batch_ids)).unsqueeze(1).expand_as(batch_ids)
    valid = batch_ids >= 0
    picked = values[batch_ids.clamp(min=0)]
    valid &= picked >= 0
    counts = torch.bincount((rows * num_values + picked)[valid],
                            minlength=len(batch_ids) * num_values)
    return int((counts * (counts - 1) // 2).sum())


def batch_pair_stats(batches: torch.Tensor, clusters: torch.Tensor,
                     true_labels: torch.Tensor | None = None) -> BatchPairStats:
    """Same-cluster pairs and the share of same-class (false-negative) pairs of ``(M, G)``
    global batches of image indices (-1 = no image)."""
    same_cluster = _pairs_within(batches, clusters, int(clusters.max()) + 1)
    share = random_share = float("nan")
    if true_labels is not None and bool((true_labels >= 0).any()):
        classes = int(true_labels.max()) + 1
        labelled = (batches >= 0) & (true_labels[batches.clamp(min=0)] >= 0)
        per_batch = labelled.sum(1)
        all_pairs = int((per_batch * (per_batch - 1) // 2).sum())
        if all_pairs:
            share = _pairs_within(batches, true_labels, classes) / all_pairs
        sizes = torch.bincount(true_labels[true_labels >= 0], minlength=classes).double()
        total = sizes.sum()
        random_share = float((sizes * (sizes - 1)).sum() / (total * (total - 1)))
    return BatchPairStats(same_cluster, share, random_share)


class GuidedBatchSampler(Sampler[list[int]]):
    """G-SimCLR's batches (Chakraborty et al., 2020): images of one cluster (pseudo-label) do
    not share a batch, so that NT-Xent sees fewer false negatives; a fresh seeded order every
    epoch, unlike the original's fixed one.

    Each epoch: the images (a random subset of whole global batches with ``drop_last``) are
    grouped by cluster (clusters in a random order, images in a random order within each) and
    dealt out in turn to the ``M`` global batches, image ``i`` of that order to batch
    ``i mod M``. A cluster of at most ``M`` images thus lands in ``M`` distinct batches: no
    same-cluster pair anywhere when every cluster has at most ``len(pool) / global batch``
    images (which needs ``k >= global batch``). A larger cluster wraps around and puts about
    ``size / M`` images in each batch, the fewest its size allows. Batch order and the order
    within each batch are shuffled. Vectorised: sorts and one bincount per epoch.

    Under DDP every process draws the same global batches (of ``world_size * batch_size``
    images, the constraint holding on them) and keeps its own share of each (every
    ``world_size``-th image): the shares are disjoint and cover the global batch.

    After each epoch's order is drawn, :attr:`stats` holds its pair counts
    (:class:`BatchPairStats`), and :attr:`history` those of every epoch drawn.

    Args:
        clusters: ``(N,)`` cluster id of each image of the pool.
        batch_size: Images per batch of one process.
        drop_last: Drop images so that every global batch is full.
        seed: Seed of the order; the epoch is added to it (:meth:`set_epoch`).
        rank: This process's index in ``[0, world_size)``.
        world_size: Number of processes.
        true_labels: ``(N,)`` true classes (-1 unknown), for the false-negative diagnostic only.

    Raises:
        ValueError: Fewer images than one global batch needs, or a negative cluster id.
    """

    def __init__(self, clusters: torch.Tensor, batch_size: int, drop_last: bool = True,
                 seed: int = 0, rank: int = 0, world_size: int = 1,
                 true_labels: torch.Tensor | None = None) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} must lie in [0, world_size={world_size})")
        if len(clusters) == 0 or int(clusters.min()) < 0:
            raise ValueError("guided batches need a cluster id >= 0 for every image")
        self.clusters = clusters.long()
        self.true_labels = None if true_labels is None else true_labels.long()
        self.k = int(self.clusters.max()) + 1
        self.batch_size = batch_size
        self.global_batch = batch_size * world_size
        if len(clusters) < world_size or (drop_last and len(clusters) < self.global_batch):
            raise ValueError(f"{len(clusters)} training images are fewer than one global batch "
                             f"of {self.global_batch}; lower optimizer.batch_size")
        self.num_batches = (len(clusters) // self.global_batch if drop_last
                            else -(-len(clusters) // self.global_batch))
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0
        self.rank = rank
        self.world_size = world_size
        self.stats: BatchPairStats | None = None
        self.history: list[BatchPairStats] = []

    def set_epoch(self, epoch: int) -> None:
        """Draws a new order for ``epoch`` (Lightning calls it at the start of every epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches

    def global_batches(self, epoch: int) -> torch.Tensor:
        """``(M, world_size * batch_size)`` image indices of an epoch's global batches (-1 pads
        the short batches of an epoch without ``drop_last``)."""
        generator = torch.Generator().manual_seed(self.seed + epoch)
        m, g = self.num_batches, self.global_batch
        kept = torch.randperm(len(self.clusters), generator=generator)[:m * g]
        cluster_order = torch.randperm(self.k, generator=generator)
        # A stable sort keeps the random order of the images within each cluster.
        grouped = kept[torch.sort(cluster_order[self.clusters[kept]], stable=True).indices]
        padded = torch.full((m * g,), -1, dtype=torch.int64)
        padded[:len(grouped)] = grouped
        batches = padded.view(g, m).T  # image i of the grouped order goes to batch i mod M
        within = torch.rand(m, g, generator=generator).argsort(dim=1)
        batches = batches.gather(1, within)[torch.randperm(m, generator=generator)]
        # Without drop_last the -1 pads sit anywhere in a batch: move them to its end.
        return batches.gather(1, (batches < 0).to(torch.int8).argsort(dim=1, stable=True))

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.global_batches(self.epoch)
        self.stats = batch_pair_stats(batches, self.clusters, self.true_labels)
        self.history.append(self.stats)
        # Strided, so that a short last batch still gives every process an image.
        for row in batches[:, self.rank::self.world_size]:
            yield row[row >= 0].tolist()
