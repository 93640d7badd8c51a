"""Weighted k-nearest-neighbour classification of frozen features (lightly's ``knn_predict``,
the InstDisc voting rule: neighbours vote with weight ``exp(cosine / temperature)``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from lightly.utils.benchmarking import knn_predict


@torch.no_grad()
def knn_scores(train_x: torch.Tensor, train_y: torch.Tensor, query_x: torch.Tensor,
               num_classes: int, k: int = 20, temperature: float = 0.07,
               batch_size: int = 1024) -> torch.Tensor:
    """Class scores ``(M, C)`` of ``(M, D)`` queries against ``(N, D)`` labelled features.

    A class's score is minus its rank in the vote (0 for the winner), so ``argmax`` gives the
    prediction and ``topk`` the runners-up.
    """
    bank = F.normalize(train_x, dim=1).T.contiguous()
    k = min(k, len(train_y))
    ranks = torch.arange(num_classes, dtype=torch.float32)
    chunks = []
    for start in range(0, len(query_x), batch_size):
        query = F.normalize(query_x[start:start + batch_size], dim=1)
        order = knn_predict(query, bank, train_y, num_classes, k, temperature)
        chunks.append(torch.empty(order.shape).scatter_(1, order, -ranks.expand(order.shape)))
    return torch.cat(chunks)
