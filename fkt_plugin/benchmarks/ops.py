"""Aten ops per call, counted without a GPU: each op that is not a view is a kernel launch on a
GPU, and a synchronising op stalls the host until the GPU's queue drains.

``TorchDispatchMode`` sees every aten op a call dispatches after autograd, so the count is the
launch count of eager execution on any device; under ``FakeTensorMode`` the same count comes
from a fake CUDA batch, where a data-dependent read fails instead of synchronising.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from tqdm import tqdm

from fkt_plugin.augmentation import DeviceAugmentation, KorniaAugmentation, parse_pipelines
from fkt_plugin.benchmarks.timing import machine_line, markdown_table, write_report
from fkt_plugin.recipes import PRETRAIN_RECIPES, compose_recipe

# Ops that read a device value on the host (``.item()``, ``bool(t)``, ``nonzero``, selection by
# a boolean mask, whose output shape depends on the data).
SYNCING = {"aten._local_scalar_dense", "aten.item", "aten.nonzero", "aten.masked_select",
           "aten.is_nonzero", "aten.unique", "aten._unique2"}


def _is_view(func: torch._ops.OpOverload) -> bool:
    """Whether an op only makes views (aliases its input without writing): no kernel."""
    aliases = [ret.alias_info for ret in func._schema.returns]
    return bool(aliases) and all(a is not None and not a.is_write for a in aliases)


def _syncs(name: str, args: tuple[Any, ...]) -> bool:
    if name in SYNCING:
        return True
    # Indexing by a boolean mask selects a data-dependent number of elements.
    if name.startswith(("aten.index", "aten.index_put")):
        indices = args[1] if len(args) > 1 else ()
        return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool
                   for i in (indices or ()))
    return False


@dataclass
class OpCount:
    """What one call dispatched: ``total`` aten ops, of which ``views`` made only views,
    ``syncing`` the names of synchronising ops, and ``ops`` every op by name."""

    total: int = 0
    views: int = 0
    syncing: list[str] = field(default_factory=list)
    ops: Counter[str] = field(default_factory=Counter)

    @property
    def kernels(self) -> int:
        """Ops that launch a kernel on a GPU (every op but views)."""
        return self.total - self.views


class OpCounter(TorchDispatchMode):
    """Counts the aten ops dispatched while it is entered (see :class:`OpCount`)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = OpCount()

    def __torch_dispatch__(self, func: torch._ops.OpOverload, types: Any,
                           args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
                           ) -> Any:
        name = str(func.overloadpacket)
        if func.namespace != "aten":  # metadata queries (prim.device, ...): no kernel
            return func(*args, **(kwargs or {}))
        self.count.total += 1
        self.count.ops[name] += 1
        self.count.views += _is_view(func)
        if _syncs(name, args):
            self.count.syncing.append(name)
        return func(*args, **(kwargs or {}))


def count_ops(call: Callable[..., Any], *args: Any) -> OpCount:
    """The aten ops that ``call(*args)`` dispatches."""
    with OpCounter() as counter:
        call(*args)
    return counter.count


def fake_cuda_ops(engine: nn.Module, batch: int, side: int, channels: int = 3) -> OpCount:
    """An engine's ops for one ``batch`` of ``side`` px uint8 images on a fake CUDA device
    (where a host read of a device value raises instead of synchronising)."""
    with FakeTensorMode(allow_non_fake_inputs=True):
        engine = engine.to("cuda")
        images = torch.empty(batch, channels, side, side, dtype=torch.uint8, device="cuda")
        return count_ops(engine, images)


def run(batch_sizes: Sequence[int], out: Path | None, command: str) -> None:
    """Ops per batch of every shipped pretrain recipe's views: the fused engine at each batch
    size, kornia's containers at the first."""
    rows = []
    for recipe in tqdm(sorted(PRETRAIN_RECIPES.glob("*/*.yaml")), desc="recipes"):
        cfg = compose_recipe(recipe)
        pipelines = parse_pipelines(cfg.augmentations)
        side = int(cfg.data.get("image_size") or pipelines[0].crop_size)
        engine = DeviceAugmentation(pipelines, [0.5] * 3, [0.25] * 3)
        counts = [fake_cuda_ops(engine, batch, side) for batch in batch_sizes]
        kornia = KorniaAugmentation(pipelines, [0.5] * 3, [0.25] * 3,
                                    cpu_chunk_pixels=batch_sizes[0] * side * side)
        images = torch.randint(0, 256, (batch_sizes[0], 3, side, side), dtype=torch.uint8)
        kornia_count = count_ops(kornia, images)
        rows.append([f"`{recipe.parent.name}/{recipe.stem}`",
                     sum(int(p.num_crops) for p in pipelines),
                     f"{side} → {', '.join(sorted({str(p.crop_size) for p in pipelines}))}",
                     *(f"{c.total} / {c.kernels}" for c in counts),
                     sum(len(c.syncing) for c in counts), f"{kornia_count.total:,}"])
    header = ["recipe", "views", "px (image → crops)",
              *(f"fused ops / kernels, batch {b}" for b in batch_sizes),
              "fused synchronising ops", f"kornia's containers ops, batch {batch_sizes[0]}"]
    notes = [
        "fused: aten ops one batch of colour images dispatches on a fake CUDA device "
        "(FakeTensorMode), all ops / those that launch a kernel (every op but views); "
        "synchronising ops: .item()-type reads, nonzero, boolean-mask indexing (none can run "
        "there). Grey images (Fashion-MNIST) skip hue, saturation and grayscale: fewer ops.",
        "kornia's containers: counted on the CPU for the whole batch in one chunk (they cannot "
        "run on a fake CUDA batch: they read device values on the host).",
    ]
    write_report(out, "Aten ops per batch of views", command, machine_line(torch.device("cpu")),
                 markdown_table(header, rows), notes)
