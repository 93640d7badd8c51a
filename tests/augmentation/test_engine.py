"""The view engine's GPU contract, proved on a CPU: every shipped pretrain recipe's views run on
a fake CUDA batch (a host read or a CPU-drawn parameter fails there), one batch dispatches a
fixed, small number of aten ops whatever the batch size, none of them synchronising, and the
engine compiles as one graph."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig
from torch._subclasses.fake_tensor import FakeTensorMode

from fkt_plugin.augmentation import DeviceAugmentation, KorniaAugmentation, parse_pipelines
from fkt_plugin.benchmarks.ops import count_ops, fake_cuda_ops
from fkt_plugin.recipes import PRETRAIN_RECIPES, compose_recipe

RECIPES = sorted(PRETRAIN_RECIPES.glob("*/*.yaml"))
GREY_DATASETS = {"fashion_mnist"}


def recipe_views(recipe: Path) -> tuple[list[DictConfig], int, int]:
    """A recipe's parsed pipelines, image side (``data.image_size``, else the crop) and
    channels."""
    cfg = compose_recipe(recipe)
    pipes = parse_pipelines(cfg.augmentations)
    side = cfg.data.get("image_size") or pipes[0].crop_size
    return pipes, int(side), 1 if cfg.data.dataset in GREY_DATASETS else 3


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_recipes_views_run_on_a_fake_cuda_batch(recipe: Path) -> None:
    pipes, side, channels = recipe_views(recipe)
    engine = DeviceAugmentation(pipes, [0.5] * channels, [0.25] * channels)
    with FakeTensorMode(allow_non_fake_inputs=True):
        engine = engine.to("cuda")
        views = engine(torch.empty(64, channels, side, side, dtype=torch.uint8, device="cuda"))
    assert [(tuple(v.shape), v.device.type, v.dtype) for v in views] == [
        ((64, channels, p.crop_size, p.crop_size), "cuda", torch.float32)
        for p in pipes for _ in range(p.num_crops)]


def test_kornias_containers_fail_on_a_fake_cuda_batch() -> None:
    # The check can fail: kornia's containers read device values on the host.
    pipes, side, _ = recipe_views(PRETRAIN_RECIPES / "cifar10" / "simclr.yaml")
    engine = KorniaAugmentation(pipes, [0.5] * 3, [0.25] * 3)
    with pytest.raises(Exception, match="DataDependent|data-dependent|_local_scalar_dense"), \
            FakeTensorMode(allow_non_fake_inputs=True):
        engine.to("cuda")(torch.empty(64, 3, side, side, dtype=torch.uint8, device="cuda"))


# (recipe, most aten ops per batch): 32 px views within 150; blur (96 px) and shrunk crops
# (Intel's 150 px images to 128 px crops) cost their ops on top.
BUDGETS = [("cifar10/simclr", 150), ("cifar10/byol", 150), ("cifar10/fkt_joint", 150),
           ("cifar10/mvmr", 150), ("stl10/simclr", 170), ("stl10/byol", 170),
           ("intel/fkt_joint", 185)]


@pytest.mark.parametrize(("recipe", "budget"), BUDGETS)
def test_a_batch_is_a_fixed_small_number_of_ops_with_no_sync(recipe: str, budget: int) -> None:
    pipes, side, _ = recipe_views(PRETRAIN_RECIPES / f"{recipe}.yaml")
    engine = DeviceAugmentation(pipes, [0.5] * 3, [0.25] * 3)
    small, large = fake_cuda_ops(engine, 256, side), fake_cuda_ops(engine, 1024, side)
    assert small.syncing == [] and large.syncing == []
    assert small.ops == large.ops  # the same ops whatever the batch size
    # Views of one crop size are made together: fkt_joint's 3 views cost what SimCLR's 2 do
    # (docs/results/performance/README.md lists every recipe's counts).
    assert small.total <= budget
    # kornia's containers dispatch thousands of ops for the same views, growing with the batch.
    kornia = KorniaAugmentation(pipes, [0.5] * 3, [0.25] * 3, cpu_chunk_pixels=2**40)
    images = torch.randint(0, 256, (256, 3, side, side), dtype=torch.uint8)
    assert count_ops(kornia, images).total > 10 * small.total


def test_the_counter_sees_synchronising_ops() -> None:
    x = torch.rand(8)

    def reads(t: torch.Tensor) -> None:
        t[t > 0.5].sum()
        float(t.sum())
        t.nonzero()

    assert set(count_ops(reads, x).syncing) == {"aten.index", "aten._local_scalar_dense",
                                                 "aten.nonzero"}


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="torch.compile's CPU backend needs a C compiler; none is installed")
def test_the_engine_compiles_as_one_graph() -> None:
    pipes, side, _ = recipe_views(PRETRAIN_RECIPES / "cifar10" / "byol.yaml")
    engine = DeviceAugmentation(pipes, [0.5] * 3, [0.25] * 3)
    compiled = torch.compile(engine, fullgraph=True)  # a graph break raises here
    images = torch.randint(0, 256, (16, 3, side, side), dtype=torch.uint8)
    torch.manual_seed(0)
    views = compiled(images)
    assert [tuple(v.shape) for v in views] == [(16, 3, 32, 32)] * 2
    assert all(bool(v.isfinite().all()) for v in views)
