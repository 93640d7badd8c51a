"""DDP on the CPU (gloo, 2 processes): the losses and gradients of every method equal those of
one process on the same global batch, so NT-Xent's gathered negatives, BYOL's per-image loss and
the label mask of the classification term are rank-correct."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from omegaconf import DictConfig, OmegaConf

from fkt_plugin.augmentation import count_views
from fkt_plugin.data.samplers import TrainBatchSampler
from fkt_plugin.methods import METHODS

WORLD_SIZE = 2
PER_PROCESS = 12


def global_batch(views: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Views and targets of one global batch; labels sit unevenly, mostly in the first half."""
    generator = torch.Generator().manual_seed(0)
    size = WORLD_SIZE * PER_PROCESS
    images = [torch.randn(size, 1, 16, 16, generator=generator) for _ in range(views)]
    targets = torch.randint(0, 10, (size,), generator=generator)
    targets[torch.randperm(size, generator=generator)[:size // 2]] = -1
    return images, targets


def loss_and_gradients(cfg: dict[str, Any], rank: int, world_size: int
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """This process's training loss and gradients on its share of the global batch."""
    torch.manual_seed(0)  # identical initial weights in every process
    model = METHODS[cfg["method"]](OmegaConf.create(cfg))
    # Evaluation-mode BatchNorm: per-process batch statistics are what sync_batchnorm (GPU-only
    # in torch) fixes; here the point is the losses' reductions across processes.
    model.eval()
    views, targets = global_batch(count_views(cfg["augmentations"]))
    sampler = TrainBatchSampler(targets, len(targets) // world_size, seed=1, rank=rank,
                                world_size=world_size)
    mine = torch.tensor(next(iter(sampler)))
    loss = model.training_step((mine, [v[mine] for v in views], targets[mine]), 0)
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


def _worker(rank: int, init_file: str, cfg: dict[str, Any], out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=WORLD_SIZE)
    try:
        loss, grads = loss_and_gradients(cfg, rank, WORLD_SIZE)
        # What DDP does: average the loss for the log, and every gradient across processes.
        for tensor in (loss, *grads.values()):
            dist.all_reduce(tensor)
            tensor /= WORLD_SIZE
        if rank == 0:
            torch.save({"loss": loss, "grads": grads}, out)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("recipe", ["fkt_joint", "simclr", "byol"])
def test_two_processes_compute_the_single_process_loss_and_gradients(
        recipe: str, make_cfg, tmp_path: Path) -> None:
    cfg: DictConfig = make_cfg(recipe)
    if recipe == "fkt_joint":
        assert cfg.method_kwargs.supervised_view == 2  # the CE term runs on its own view
    plain = OmegaConf.to_container(cfg, resolve=True)
    single_loss, single_grads = loss_and_gradients(plain, rank=0, world_size=1)
    out = tmp_path / "rank0.pt"
    mp.spawn(_worker, args=(str(tmp_path / "init"), plain, str(out)), nprocs=WORLD_SIZE)
    distributed = torch.load(out)
    assert torch.allclose(distributed["loss"], single_loss, rtol=1e-5, atol=1e-6)
    assert distributed["grads"].keys() == single_grads.keys()
    for name, grad in single_grads.items():
        assert torch.allclose(distributed["grads"][name], grad, rtol=1e-4, atol=1e-6), name
