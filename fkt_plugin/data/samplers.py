"""Training batch samplers: seeded per epoch and split across processes (DDP).

Every process draws the same global batches (one generator seeded with ``seed + epoch``) and keeps
its own share, so that ``world_size`` processes with ``batch_size`` images each train on the same
global batches, of ``world_size * batch_size`` images, that one process would.
"""

from __future__ import annotations

from collections.abc import Iterator

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
