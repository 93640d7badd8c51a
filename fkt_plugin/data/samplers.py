"""Batch samplers over a split's indices."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class LabelledShareBatchSampler(Sampler[list[int]]):
    """Batches with a fixed share of labelled images, the rest drawn from the whole pool.

    With few labels, uniform batches hold almost none (1% labels, batch 256: ~2.6), so a joint
    method's supervised term sees each labelled image only once per epoch. Here each batch takes
    ``round(share * batch_size)`` images from a reshuffled cycle over the labelled images (the
    labelled/unlabelled batch split of semi-supervised methods such as FixMatch) and the others
    from a shuffled pass over the whole pool; an epoch is one pass over the pool.

    Args:
        targets: ``(N,)`` targets of the pool; -1 marks an unlabelled image.
        batch_size: Images per batch.
        share: Share of each batch taken from the labelled images, in (0, 1].
        drop_last: Drop the last partial pass over the pool.
    """

    def __init__(self, targets: torch.Tensor, batch_size: int, share: float,
                 drop_last: bool = True) -> None:
        self.labelled = (targets >= 0).nonzero().flatten()
        if len(self.labelled) == 0:
            raise ValueError("data.labelled_share needs labelled images, and the pool has none")
        self.size = len(targets)
        self.batch_size = batch_size
        self.per_batch = max(1, round(share * batch_size))
        self.drop_last = drop_last

    def __len__(self) -> int:
        rest = self.batch_size - self.per_batch
        if rest == 0:
            return self.size // self.batch_size if self.drop_last else -(-self.size
                                                                         // self.batch_size)
        return self.size // rest if self.drop_last else -(-self.size // rest)

    def _labelled_cycle(self) -> Iterator[int]:
        while True:
            yield from self.labelled[torch.randperm(len(self.labelled))].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        # torch's global generator, so that the run's seed fixes the batches.
        pool = torch.randperm(self.size).tolist()
        labelled = self._labelled_cycle()
        rest = self.batch_size - self.per_batch
        for b in range(len(self)):
            batch = [next(labelled) for _ in range(self.per_batch)]
            batch += pool[b * rest:(b + 1) * rest]
            yield batch
