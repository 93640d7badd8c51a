"""The optimisers and learning-rate schedulers a recipe names (:data:`OPTIMIZERS`,
:data:`SCHEDULERS`: the registries that both validate ``optimizer.name``/``scheduler.name`` and
build them), and LARS without host-device synchronisations.

lightly's ``LARS`` (You et al., "Large Batch Training of Convolutional Networks", 2017, the
optimiser of SimCLR and BYOL) decides per parameter in Python whether the trust ratio applies
(``if p_norm != 0 and g_norm != 0``), which reads two norms back from the device for every
parameter: 136 synchronisations per ResNet-18 step, measured on a GPU with ``fkt-bench syncs``.
This subclass takes the same decision on the device with ``torch.where``; the update is lightly's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from lightly.utils.lars import LARS
from lightly.utils.scheduler import CosineWarmupScheduler
from torch.optim.lr_scheduler import LRScheduler

from fkt_plugin.registry import Registry


class SyncFreeLARS(LARS):
    """lightly's ``LARS`` (same arguments and defaults, same update) with the trust-ratio test
    on the device, so a step queues its work without waiting for the GPU.

    The update of a parameter ``p`` with gradient ``g`` and weight decay ``wd > 0``:
    ``d = trust_coefficient * |p| / (|g| + wd |p| + eps) * (g + wd p)`` if ``|p|`` and ``|g|``
    are non-zero, else ``d = g``; then SGD momentum (and dampening, Nesterov) on ``d``.
    """

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            weight_decay, momentum = group["weight_decay"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                d_p = p.grad
                if weight_decay != 0:
                    p_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(d_p)
                    scaled = d_p.add(p, alpha=weight_decay).mul_(
                        group["trust_coefficient"] * p_norm
                        / (g_norm + p_norm * weight_decay + group["eps"]))
                    d_p = torch.where((p_norm != 0) & (g_norm != 0), scaled, d_p)
                if momentum != 0:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        buf = state["momentum_buffer"] = torch.clone(d_p).detach()
                    else:
                        buf = state["momentum_buffer"]
                        buf.mul_(momentum).add_(d_p, alpha=1 - group["dampening"])
                    d_p = d_p.add(buf, alpha=momentum) if group["nesterov"] else buf
                p.add_(d_p, alpha=-group["lr"])
        return loss


OptimizerFactory = Callable[..., torch.optim.Optimizer]

OPTIMIZERS: Registry[OptimizerFactory] = Registry("optimizer")
"""``optimizer.name`` → a factory ``(param_groups, lr, weight_decay, **optimizer.kwargs)``;
SGD and LARS get momentum 0.9 unless the kwargs set it (solo-learn's default)."""


@OPTIMIZERS.register("sgd")
def _sgd(params: Any, lr: float, weight_decay: float, **kwargs: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay,
                           **{"momentum": 0.9, **kwargs})


@OPTIMIZERS.register("lars")
def _lars(params: Any, lr: float, weight_decay: float, **kwargs: Any) -> torch.optim.Optimizer:
    return SyncFreeLARS(params, lr=lr, weight_decay=weight_decay, **{"momentum": 0.9, **kwargs})


OPTIMIZERS.register("adam")(torch.optim.Adam)
OPTIMIZERS.register("adamw")(torch.optim.AdamW)

SchedulerFactory = Callable[..., LRScheduler]

SCHEDULERS: Registry[SchedulerFactory | None] = Registry("scheduler")
"""``scheduler.name`` → a factory ``(optimizer, warmup_steps, total_steps, start, end)`` of a
per-step scheduler, or None for a constant learning rate (``none``). ``start`` and ``end`` are
the warm-up's first and the schedule's last learning rate as fractions of ``optimizer.lr``:
lightly's scheduler scales each parameter group's own rate, so the classifier keeps its
ratio."""

WARMUP_SCHEDULERS = ("warmup_cosine",)
"""The schedulers that read ``scheduler.warmup_epochs``."""


@SCHEDULERS.register("cosine")
@SCHEDULERS.register("warmup_cosine")
def _cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, start: float,
            end: float) -> LRScheduler:
    return CosineWarmupScheduler(optimizer, warmup_epochs=warmup_steps, max_epochs=total_steps,
                                 end_value=end, warmup_start_value=start)


SCHEDULERS.register("none")(None)
