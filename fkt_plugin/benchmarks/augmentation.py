"""``fkt-bench aug``: images/s and aten ops per batch of the SimCLR and BYOL view pipelines, the
fused engine and kornia's containers on the device against torchvision per image on the CPU, at
several image sizes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from omegaconf import ListConfig, OmegaConf

from fkt_plugin.augmentation import (
    DeviceAugmentation,
    KorniaAugmentation,
    PerImageViews,
    parse_pipelines,
)
from fkt_plugin.benchmarks.ops import count_ops, fake_cuda_ops
from fkt_plugin.benchmarks.timing import (
    interleaved_medians,
    machine_line,
    markdown_table,
    write_report,
)
from fkt_plugin.errors import ConfigError, MissingPathError
from fkt_plugin.recipes import PRETRAIN_RECIPES

# SimCLR's symmetric views and BYOL's asymmetric ones (blur 1.0/0.1, solarization 0/0.2), from
# the STL-10 recipes, whose pipelines carry every operation.
PRESETS = {"simclr": "stl10/augmentations/symmetric.yaml",
           "byol": "stl10/augmentations/asymmetric.yaml"}
MEAN, STD = (0.45, 0.45, 0.45), (0.25, 0.25, 0.25)


def preset_pipelines(preset: str, size: int) -> list:
    """A preset's pipelines with every crop at ``size`` px."""
    path = PRETRAIN_RECIPES / PRESETS[preset]
    if not path.exists():
        raise MissingPathError(f"{path} is missing: fkt-bench reads the recipes of a source "
                               "checkout")
    pipelines = OmegaConf.load(path)
    if not isinstance(pipelines, ListConfig):
        raise ConfigError(f"{path} is not a list of augmentation pipelines")
    for pipe in pipelines:
        pipe.crop_size = size
    return parse_pipelines(pipelines)


def synthetic_images(count: int, size: int, device: torch.device) -> torch.Tensor:
    """uint8 images with smooth structure (coarse noise upsampled), ``(count, 3, size, size)``."""
    coarse = torch.rand(count, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    smooth = torch.nn.functional.interpolate(coarse, size=size, mode="bilinear")
    return (smooth * 255).round().to(torch.uint8).to(device)


def device_views(backend: str, pipelines: list) -> DeviceAugmentation | KorniaAugmentation:
    """The module that makes a device backend's views (``fused`` or ``kornia``)."""
    if backend == "kornia":
        return KorniaAugmentation(pipelines, MEAN, STD)
    return DeviceAugmentation(pipelines, MEAN, STD)


def ops_per_batch(backend: str, pipelines: list, images: torch.Tensor) -> int:
    """Aten ops to make every view of ``images``: the fused engine on a fake CUDA batch (what a
    GPU runs), kornia's containers on the CPU in one chunk (they cannot run on a fake CUDA
    batch), torchvision one image at a time (the mean count of up to 32 images, which take
    different random steps, times the batch)."""
    cpu_images = images.cpu()
    if backend == "torchvision":
        views = PerImageViews(pipelines, MEAN, STD)
        sample = cpu_images[:32]
        total = sum(count_ops(views, image).total for image in sample)
        return round(total * len(images) / len(sample))
    engine = device_views(backend, pipelines)
    if backend == "fused":
        return fake_cuda_ops(engine, len(images), images.shape[-1], images.shape[1]).total
    engine.cpu_chunk_pixels = cpu_images.numel()
    return count_ops(engine, cpu_images).total


def backend_medians(pipelines: list, images: torch.Tensor, rounds: int,
                    desc: str) -> dict[str, float]:
    """Median seconds to make every view of ``images``: the fused engine and kornia's
    containers on their device, torchvision one image at a time with one thread on the CPU
    (one loader worker's work)."""
    on_device = {backend: device_views(backend, pipelines).to(images.device)
                 for backend in ("fused", "kornia")}
    per_image = PerImageViews(pipelines, MEAN, STD)
    cpu_images = images.cpu()
    threads = torch.get_num_threads()

    def torchvision_images() -> None:
        torch.set_num_threads(1)
        try:
            for image in cpu_images:
                per_image(image)
        finally:
            torch.set_num_threads(threads)

    synchronize = torch.cuda.synchronize if images.is_cuda else (lambda: None)
    return interleaved_medians({"fused": lambda: on_device["fused"](images),
                                "kornia": lambda: on_device["kornia"](images),
                                "torchvision": torchvision_images},
                               rounds, synchronize=synchronize, desc=desc)


def benchmark_augmentation(sizes: Sequence[int], batch_size: int, rounds: int,
                           device: torch.device, workers: int,
                           presets: Sequence[str] = tuple(PRESETS)) -> list[list[object]]:
    """Rows of (pipeline, px, img/s of fused, kornia and one torchvision process, fused's
    ratios to kornia, to torchvision and to ideal ``workers``-process torchvision, and the aten
    ops per batch of each)."""
    rows: list[list[object]] = []
    for size in sizes:
        images = synthetic_images(batch_size, size, device)
        for preset in presets:
            pipelines = preset_pipelines(preset, size)
            medians = backend_medians(pipelines, images, rounds, desc=f"{preset} {size}px")
            rate = {name: batch_size / seconds for name, seconds in medians.items()}
            ops = [ops_per_batch(b, pipelines, images) for b in ("fused", "kornia", "torchvision")]
            rows.append([preset, size, *(f"{rate[b]:,.0f}" for b in rate),
                         f"{rate['fused'] / rate['kornia']:.2f}x",
                         f"{rate['fused'] / rate['torchvision']:.2f}x",
                         f"{rate['fused'] / (workers * rate['torchvision']):.2f}x",
                         " / ".join(f"{n:,}" for n in ops)])
    return rows


def run(sizes: Sequence[int], batch_size: int, rounds: int, device_name: str,
        workers: int | None, out: Path | None, command: str) -> None:
    device = torch.device(device_name)
    workers = workers or os.cpu_count() or 1
    rows = benchmark_augmentation(sizes, batch_size, rounds, device, workers)
    header = ["views", "px", f"fused ({device.type}) img/s", f"kornia ({device.type}) img/s",
              "torchvision, 1 process img/s", "fused / kornia", "fused / torchvision",
              f"fused / torchvision x {workers} (ideal)",
              "aten ops per batch (fused / kornia / torchvision)"]
    notes = [
        f"Batch {batch_size}, two views per image (SimCLR: symmetric; BYOL: blur 1.0/0.1, "
        "solarization 0/0.2), crops at the image size; medians of "
        f"{rounds} interleaved rounds (order reversed every other round) after one warm-up "
        "round.",
        "fused: the view engine (the default backend); kornia: kornia's augmentation "
        "containers; torchvision, 1 process: one image at a time with one thread, the work of "
        "one DataLoader worker. The ideal column multiplies that by the worker count, an upper "
        "bound that ignores inter-process transfer and contention with training.",
        "Aten ops per batch (each op but a view is a kernel launch on a GPU), counted with "
        "TorchDispatchMode: fused on a fake CUDA batch (FakeTensorMode; what a GPU runs), "
        "kornia on the CPU for the whole batch in one chunk, torchvision the mean count of 32 "
        "images times the batch.",
    ]
    write_report(out, "Augmentation throughput", command, machine_line(device),
                 markdown_table(header, rows), notes)
