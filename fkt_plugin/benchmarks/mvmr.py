"""``fkt-bench mvmr``: the cost of an MV-MR training step against a SimCLR step on the same
backbone, batch and images, and what the MV-MR step spends its time on.

Both steps go through the method classes (views on the device, backbone, head, loss, backward,
optimiser step) without Lightning, whose per-step overhead is the same for both and measured by
``fkt-bench train``. The parts of both steps are timed alone in the same interleaved rounds:
the views, the projection heads (forward and backward), each representation of the un-augmented
view, and the distance correlations (forward and backward) on tensors of the step's shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import DictConfig

from fkt_plugin.augmentation import DeviceAugmentation, parse_pipelines
from fkt_plugin.benchmarks.augmentation import MEAN, STD, synthetic_images
from fkt_plugin.benchmarks.timing import (
    interleaved_medians,
    machine_line,
    markdown_table,
    write_report,
)
from fkt_plugin.benchmarks.training import bench_cfg
from fkt_plugin.losses import distance_correlation
from fkt_plugin.methods import METHODS, BaseMethod
from fkt_plugin.methods.mvmr import AUGMENTED, MVMR, ORIGINAL


def _step(model: BaseMethod, augment: DeviceAugmentation, images: torch.Tensor,
          targets: torch.Tensor, optimizer: torch.optim.Optimizer) -> Callable[[], None]:
    """One training step of ``model`` on ``images``, views made on the device."""
    used = sorted(set(range(model.ssl_views)) | {model.supervised_view})

    def call() -> None:
        views = augment(images)
        feats = model.encode_views(views, used)
        logits = model.classifier(feats[model.supervised_view].detach())
        loss, _ = model.training_losses(feats, views, logits, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return call


def _dcor_calls(model: MVMR, views: list[torch.Tensor]) -> Callable[[], None]:
    """The step's distance correlations, forward and backward, on tensors of its shapes."""
    with torch.no_grad():
        z = model.projector(model.backbone(views[AUGMENTED]))
        reps = [rep(views[ORIGINAL]) for rep in model.representations.values()]

    def call() -> None:
        z_aug = z.clone().requires_grad_(True)
        total = distance_correlation(z.clone(), z_aug)
        for rep in reps:
            total = total + distance_correlation(rep, z_aug)
        total.backward()

    return call


def _head_calls(model: BaseMethod, views: list[torch.Tensor]) -> Callable[[], None]:
    """The projection head of two views' features, forward and backward."""
    with torch.no_grad():
        feats = model.backbone(torch.cat(views[:2]))
    head = getattr(model, "projector")  # noqa: B009 (every method timed here has one)

    def call() -> None:
        head(feats.clone().requires_grad_(True)).sum().backward()

    return call


def run(backbone: str, size: int, batch_size: int, rounds: int, device_name: str,
        out: Path | None, command: str, mvmr_proj_dim: int | None = None) -> None:
    """Times the SimCLR and MV-MR steps of the CIFAR-10 recipes, and their parts; prints and
    writes the table.

    Args:
        mvmr_proj_dim: Width of every layer of MV-MR's head instead of the recipe's.
    """
    device = torch.device(device_name)
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    torch.manual_seed(0)
    images = synthetic_images(batch_size, size, device)
    targets = torch.full((batch_size,), -1, device=device)
    arms: dict[str, Callable[[], None]] = {}
    cfgs: dict[str, DictConfig] = {}
    models: dict[str, BaseMethod] = {}
    for method in ("simclr", "mvmr"):
        cfg = bench_cfg(method, "fused", backbone, batch_size, 0, "32-true", accelerator)
        if method == "mvmr" and mvmr_proj_dim is not None:
            cfg.method_kwargs.proj_hidden_dim = cfg.method_kwargs.proj_output_dim = mvmr_proj_dim
        model = METHODS[method](cfg).to(device)
        augment = DeviceAugmentation(parse_pipelines(cfg.augmentations), MEAN, STD).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        cfgs[method], models[method] = cfg, model
        arms[f"{method} step"] = _step(model, augment, images, targets, optimizer)
        arms[f"{method}: views"] = lambda a=augment: a(images)  # type: ignore[misc]
        arms[f"{method}: projection head (forward + backward)"] = _head_calls(model,
                                                                             augment(images))
    mvmr = models["mvmr"]
    assert isinstance(mvmr, MVMR)
    mvmr_views = DeviceAugmentation(parse_pipelines(cfgs["mvmr"].augmentations), MEAN,
                                    STD).to(device)(images)
    for name, rep in mvmr.representations.items():
        arms[f"mvmr: representation {name}"] = (
            lambda r=rep: r(mvmr_views[ORIGINAL]))  # type: ignore[misc]
    arms["mvmr: distance correlations (forward + backward)"] = _dcor_calls(mvmr, mvmr_views)
    synchronize = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (
        lambda: None)
    median = interleaved_medians(arms, rounds, warmup=2, synchronize=synchronize)
    simclr_step = median["simclr step"]
    rows = [[name, f"{1000 * seconds:.1f}", f"{seconds / simclr_step:.2f}"]
            for name, seconds in median.items()]
    kwargs = cfgs["mvmr"].method_kwargs
    notes = [
        f"{backbone}, {size} px synthetic images, batch {batch_size}, fp32; the CIFAR-10 recipes "
        f"of both methods (SimCLR head {cfgs['simclr'].method_kwargs.proj_hidden_dim}-"
        f"{cfgs['simclr'].method_kwargs.proj_output_dim}, MV-MR head {kwargs.proj_layers} "
        f"layers of {kwargs.proj_hidden_dim}; representations "
        f"{', '.join(mvmr.representations)}). Medians of {rounds} interleaved rounds (order "
        "reversed every other round) after 2 warm-up rounds.",
        "A step: views, backbone and head of both views, loss, backward, SGD step. The rows "
        "below the two steps are parts of the steps timed alone; 'x SimCLR step' divides "
        "by the SimCLR step's median.",
    ]
    write_report(out, "MV-MR step against SimCLR step", command, machine_line(device),
                 markdown_table(["what", "median ms", "x SimCLR step"], rows), notes)
