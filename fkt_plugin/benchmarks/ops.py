"""Aten ops per call, counted without a GPU: each op that is not a view is a kernel launch on a
GPU, and a synchronising op stalls the host until the GPU's queue drains.

``TorchDispatchMode`` sees every aten op a call dispatches after autograd, so the count is the
launch count of eager execution on any device; under ``FakeTensorMode`` the same count comes
from a fake CUDA batch, where a data-dependent read fails instead of synchronising.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

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
