"""``fkt-bench train``: images/s of full training steps of ``simclr`` and ``fkt_joint``, through
fkt-plugin (Lightning, the method classes, the datamodule) and through a plain PyTorch loop that
does the same computation, with each augmentation backend."""

from __future__ import annotations

import contextlib
import logging
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from lightly.loss import NTXentLoss
from lightly.models.modules.heads import SimCLRProjectionHead
from omegaconf import DictConfig, open_dict
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from fkt_plugin.args.run import validate_run_cfg
from fkt_plugin.augmentation import PerImageViews, parse_pipelines
from fkt_plugin.backbones import build_backbone
from fkt_plugin.benchmarks.augmentation import (
    MEAN,
    STD,
    device_views,
    ops_per_batch,
    synthetic_images,
)
from fkt_plugin.benchmarks.timing import alternate, machine_line, markdown_table, write_report
from fkt_plugin.data import FKTDataModule, ImageDataset, ImageSplit
from fkt_plugin.methods import METHODS
from fkt_plugin.recipes import PRETRAIN_RECIPES, compose_recipe

# Ways of making views that the training benchmark compares: a backend, with the fused engine
# also measured with its images on the host (no residency) and as one compiled graph with the
# backbone (performance.compile, CUDA graphs on a GPU).
VARIANTS = {"fused": [], "fused-host": ["data.device_resident=false"],
            "fused-compiled": ["performance.compile=true",
                               "performance.compile_mode=reduce-overhead"],
            "kornia": [], "torchvision": []}


def bench_cfg(method: str, variant: str, backbone: str, batch_size: int, workers: int,
              precision: str, accelerator: str, as_recipe: bool = False) -> DictConfig:
    """The CIFAR-10 recipe of ``method``, set to the benchmark's backbone, batch and views
    (a :data:`VARIANTS` name).

    Args:
        as_recipe: Keep the recipe's optimiser and kNN evaluation; otherwise SGD without kNN,
            as the hand-written loop it is compared with does.
    """
    overrides = [f"backbone.name={backbone}", f"optimizer.batch_size={batch_size}",
                 f"data.augmentation_backend={variant.split('-')[0]}",
                 f"data.num_workers={workers if variant == 'torchvision' else 0}",
                 *VARIANTS[variant],
                 f"precision={precision}", f"accelerator={accelerator}", "devices=1",
                 "scheduler.warmup_epochs=0"]
    if not as_recipe:
        overrides += ["optimizer.name=sgd", "optimizer.lr=0.06", "knn_eval.enabled=false"]
    recipe = PRETRAIN_RECIPES / "cifar10" / f"{method}.yaml"
    cfg = compose_recipe(recipe, overrides)
    with open_dict(cfg):
        if not as_recipe:
            cfg.optimizer.kwargs = {}  # the recipe's LARS or Adam arguments do not apply to SGD
        if backbone != "resnet18":
            cfg.backbone.kwargs = {}  # the recipe's ResNet arguments are not the other's
    cfg = validate_run_cfg(cfg)
    with open_dict(cfg):
        cfg.data.num_classes, cfg.data.num_channels = 10, 3
    return cfg


def synthetic_dataset(images: int, size: int) -> ImageDataset:
    """CIFAR-shaped uint8 images with random labels (speed does not depend on the content)."""
    targets = torch.randint(0, 10, (images,), generator=torch.Generator().manual_seed(1))
    split = ImageSplit(synthetic_images(images, size, torch.device("cpu")), targets)
    return ImageDataset(split, split, tuple(str(c) for c in range(10)), MEAN, STD)


class _StepTimes(pl.Callback):
    """Seconds between consecutive training-batch starts (data, views, forward, backward, step)."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.times: list[float] = []
        self._last: float | None = None

    def on_train_batch_start(self, trainer: pl.Trainer, module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        _synchronize(module.device)
        now = time.perf_counter()
        if self._last is not None and batch_idx > self.warmup:
            self.times.append(now - self._last)
        self._last = now


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fkt_plugin_step_times(cfg: DictConfig, dataset: ImageDataset, steps: int,
                          warmup: int) -> list[float]:
    """Step times of ``fkt-train``'s machinery: the method class, datamodule and Trainer."""
    pl.seed_everything(0, verbose=False)
    model = METHODS[cfg.method](cfg)
    datamodule = FKTDataModule.from_cfg(cfg, dataset, labelled_only=False)
    timer = _StepTimes(warmup)
    trainer = pl.Trainer(max_steps=warmup + steps + 1, accelerator=cfg.accelerator, devices=1,
                         precision=cfg.precision, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         limit_val_batches=0, callbacks=[timer])
    trainer.fit(model, datamodule=datamodule)
    return timer.times


class _PerImageViewsDataset(Dataset):
    """The plain loop's torchvision dataset: one image's views and target per item."""

    def __init__(self, split: ImageSplit, views: PerImageViews) -> None:
        self.split, self.views = split, views

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        return self.views(self.split.read(i)), self.split.targets[i]


def _plain_batches(cfg: DictConfig, split: ImageSplit, device: torch.device
                   ) -> Iterator[tuple[list[torch.Tensor], torch.Tensor]]:
    pipelines = parse_pipelines(cfg.augmentations)
    if cfg.data.augmentation_backend == "torchvision":
        loader = DataLoader(_PerImageViewsDataset(split, PerImageViews(pipelines, MEAN, STD)),
                            batch_size=cfg.optimizer.batch_size, shuffle=True, drop_last=True,
                            num_workers=cfg.data.num_workers,
                            pin_memory=device.type == "cuda",
                            persistent_workers=cfg.data.num_workers > 0)
        while True:
            for views, targets in loader:
                yield ([v.to(device, non_blocking=True) for v in views],
                       targets.to(device, non_blocking=True))
    augment = device_views(cfg.data.augmentation_backend, pipelines).to(device)
    while True:
        order = torch.randperm(len(split))
        for start in range(0, len(split) - cfg.optimizer.batch_size + 1,
                           cfg.optimizer.batch_size):
            index = order[start:start + cfg.optimizer.batch_size]
            images = split.read(index).to(device, non_blocking=True)
            yield augment(images), split.targets[index].to(device, non_blocking=True)


def plain_loop_step_times(cfg: DictConfig, dataset: ImageDataset, steps: int,
                          warmup: int) -> list[float]:
    """Step times of a hand-written loop: same backbone, heads, views, losses and optimiser."""
    torch.manual_seed(0)
    device = torch.device("cuda" if cfg.accelerator in ("gpu", "cuda") else "cpu")
    kwargs = cfg.method_kwargs
    backbone, dim = build_backbone(cfg.backbone.name, 3, **cfg.backbone.kwargs)
    backbone = backbone.to(device).to(memory_format=torch.channels_last)
    projector = SimCLRProjectionHead(dim, kwargs.proj_hidden_dim, kwargs.proj_output_dim).to(device)
    classifier = nn.Linear(dim, 10).to(device)
    nt_xent = NTXentLoss(temperature=kwargs.temperature)
    joint = cfg.method == "fkt_joint"
    optimizer = torch.optim.SGD(
        [{"params": [*backbone.parameters(), *projector.parameters()]},
         {"params": classifier.parameters(),
          **({} if joint else {"lr": cfg.optimizer.classifier_lr, "weight_decay": 0.0})}],
        lr=cfg.optimizer.lr, momentum=0.9, weight_decay=cfg.optimizer.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, warmup + steps + 1)
    autocast: Callable[[], contextlib.AbstractContextManager] = (
        (lambda: torch.autocast(device.type, dtype=torch.bfloat16))
        if cfg.precision == "bf16-mixed" else contextlib.nullcontext)
    used = [0, 1, 2] if joint else [0, 1]
    batches = _plain_batches(cfg, dataset.train, device)
    times: list[float] = []
    last = None
    for step in range(warmup + steps + 1):
        _synchronize(device)
        now = time.perf_counter()
        if last is not None and step > warmup:
            times.append(now - last)
        last = now
        views, targets = next(batches)
        with autocast():
            x = torch.cat([views[i] for i in used]).contiguous(memory_format=torch.channels_last)
            feats = backbone(x).chunk(len(used))
            z0, z1 = projector(torch.cat(feats[:2])).chunk(2)
            ssl = nt_xent(z0, z1)
            supervised_feats = feats[2] if joint else feats[0].detach()
            labelled = targets >= 0
            ce = F.cross_entropy(classifier(supervised_feats)[labelled], targets[labelled])
            loss = kwargs.get("ssl_weight", 1.0) * ssl + kwargs.get("sup_weight", 1.0) * ce
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return times


def run(methods: Sequence[str], backends: Sequence[str], backbone: str, size: int,
        batch_size: int, steps: int, warmup: int, rounds: int, workers: int | None,
        precision: str, device_name: str, out: Path | None, command: str) -> None:
    device = torch.device(device_name)
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    workers = workers or os.cpu_count() or 1
    # Lightning's per-fit banners (accelerator, tips) would bury the progress bar.
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    dataset = synthetic_dataset(batch_size * (warmup + steps + 2) * 2, size)
    cfgs = {(m, b): bench_cfg(m, b, backbone, batch_size, workers, precision, accelerator)
            for m in methods for b in backends}
    arms = [(m, b, kind) for m in methods for b in backends for kind in ("fkt-plugin", "plain")]
    times: dict[tuple[str, str, str], list[float]] = {arm: [] for arm in arms}
    for r in tqdm(range(rounds), desc="rounds"):
        for method, backend, kind in alternate(arms, r):
            cfg = cfgs[(method, backend)]
            step_times = (fkt_plugin_step_times if kind == "fkt-plugin"
                          else plain_loop_step_times)
            times[(method, backend, kind)] += step_times(cfg, dataset, steps, warmup)
    rows = []
    for method in methods:
        for backend in backends:
            plugin_step = statistics.median(times[(method, backend, "fkt-plugin")])
            plain_step = statistics.median(times[(method, backend, "plain")])
            pipelines = parse_pipelines(cfgs[(method, backend)].augmentations)
            views_ops = ops_per_batch(backend.split("-")[0], pipelines,
                                      synthetic_images(batch_size, size, torch.device("cpu")))
            rows.append([method, backend, f"{views_ops:,}", f"{batch_size / plugin_step:,.0f}",
                         f"{batch_size / plain_step:,.0f}", f"{plain_step / plugin_step:.3f}",
                         f"{1000 * plugin_step:.0f} / {1000 * plain_step:.0f}"])
    header = ["method", "views made by", "view ops per batch", "fkt-plugin img/s",
              "plain loop img/s", "fkt-plugin / plain", "median step ms (fkt-plugin / plain)"]
    notes = [
        f"{backbone}, {size} px synthetic images, batch {batch_size}, {precision}; simclr makes "
        "2 views per image, fkt_joint 3 (two strong, one weak for the classifier). Medians of "
        f"{rounds * steps} steps per arm: {rounds} interleaved rounds (arm order reversed every "
        f"other round) of {steps} timed steps after {warmup} warm-up steps; torchvision uses "
        f"{workers} loader workers.",
        "A step is the time between consecutive batch starts: loading, views, forward, "
        "backward and optimiser step. The plain loop builds the same backbone, lightly heads "
        "and losses and SGD by hand, without Lightning or the method classes.",
        "Views made by: fused (the view engine; on a GPU its training images are "
        "device-resident, data.device_resident=auto), fused-host (images copied from the host "
        "each step), fused-compiled (performance.compile with mode reduce-overhead: backbone "
        "and engine compiled, CUDA graphs on a GPU), kornia (kornia's containers), torchvision "
        "(loader workers).",
        "View ops per batch: aten ops that making one batch's views dispatches (fused: on a fake "
        "CUDA batch; kornia: on the CPU in one chunk; torchvision: the mean count of 32 images "
        "times the batch).",
    ]
    write_report(out, "Training-step throughput", command, machine_line(device),
                 markdown_table(header, rows), notes)
