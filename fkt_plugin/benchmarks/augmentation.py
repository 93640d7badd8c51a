"""``fkt-bench aug``: images/s of the SimCLR and BYOL view pipelines, kornia on the device
against torchvision per image on the CPU, at several image sizes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from omegaconf import ListConfig, OmegaConf

from fkt_plugin.augmentation import DeviceAugmentation, PerImageViews, parse_pipelines
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


def backend_medians(pipelines: list, images: torch.Tensor, rounds: int,
                    desc: str) -> dict[str, float]:
    """Median seconds to make every view of ``images``: kornia on their device, torchvision one
    image at a time with one thread on the CPU (one loader worker's work)."""
    on_device = DeviceAugmentation(pipelines, MEAN, STD).to(images.device)
    per_image = PerImageViews(pipelines, MEAN, STD)
    cpu_images = images.cpu()
    threads = torch.get_num_threads()

    def kornia_batch() -> None:
        on_device(images)

    def torchvision_images() -> None:
        torch.set_num_threads(1)
        try:
            for image in cpu_images:
                per_image(image)
        finally:
            torch.set_num_threads(threads)

    synchronize = torch.cuda.synchronize if images.is_cuda else (lambda: None)
    return interleaved_medians({"kornia": kornia_batch, "torchvision": torchvision_images},
                               rounds, synchronize=synchronize, desc=desc)


def benchmark_augmentation(sizes: Sequence[int], batch_size: int, rounds: int,
                           device: torch.device, workers: int,
                           presets: Sequence[str] = tuple(PRESETS)) -> list[list[object]]:
    """Rows of (pipeline, px, kornia img/s, torchvision img/s per process, ratio, ideal
    ``workers``-process torchvision img/s, ratio)."""
    rows: list[list[object]] = []
    for size in sizes:
        images = synthetic_images(batch_size, size, device)
        for preset in presets:
            medians = backend_medians(preset_pipelines(preset, size), images, rounds,
                                      desc=f"{preset} {size}px")
            kornia_rate = batch_size / medians["kornia"]
            torchvision_rate = batch_size / medians["torchvision"]
            rows.append([preset, size, f"{kornia_rate:,.0f}", f"{torchvision_rate:,.0f}",
                         f"{kornia_rate / torchvision_rate:.2f}x",
                         f"{workers * torchvision_rate:,.0f}",
                         f"{kornia_rate / (workers * torchvision_rate):.2f}x"])
    return rows


def run(sizes: Sequence[int], batch_size: int, rounds: int, device_name: str,
        workers: int | None, out: Path | None, command: str) -> None:
    device = torch.device(device_name)
    workers = workers or os.cpu_count() or 1
    rows = benchmark_augmentation(sizes, batch_size, rounds, device, workers)
    header = ["views", "px", f"kornia ({device.type}) img/s", "torchvision, 1 process img/s",
              "kornia / torchvision", f"torchvision, {workers} processes (ideal) img/s",
              "kornia / ideal"]
    notes = [
        f"Batch {batch_size}, two views per image (SimCLR: symmetric; BYOL: blur 1.0/0.1, "
        "solarization 0/0.2), crops at the image size; medians of "
        f"{rounds} interleaved rounds (order reversed every other round) after one warm-up "
        "round.",
        "torchvision, 1 process: one image at a time with one thread, the work of one "
        "DataLoader worker. The ideal column multiplies it by the worker count, an upper bound "
        "that ignores inter-process transfer and contention with training.",
    ]
    write_report(out, "Augmentation throughput", command, machine_line(device),
                 markdown_table(header, rows), notes)
