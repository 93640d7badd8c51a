"""``fkt-bench gpu``: the view engine's GPU measurements in one run, each table written to its own
file, so that a short loan of a GPU yields every number the performance page needs."""

from __future__ import annotations

from pathlib import Path

import torch

from fkt_plugin.benchmarks import augmentation, syncs, training
from fkt_plugin.errors import ConfigError


def run(device_name: str, out_dir: Path, command: str) -> None:
    """Views alone, end-to-end training (fused against torchvision workers) and syncs per step.

    Raises:
        ConfigError: ``device_name`` is not a visible CUDA device.
    """
    if torch.device(device_name).type != "cuda" or not torch.cuda.is_available():
        raise ConfigError(
            f"fkt-bench gpu measures a CUDA device, and --device is {device_name!r}"
            + ("" if torch.cuda.is_available() else " (no CUDA device is visible here)")
            + "; run it on a machine with a GPU, with --device cuda")
    out_dir.mkdir(parents=True, exist_ok=True)
    # Each part's command line is this run's, with the part it ran.
    augmentation.run([32, 96, 224], 256, 3, device_name, None,
                     out_dir / "augmentation_gpu_fused.md", f"{command} (views alone)")
    syncs.run(["simclr", "byol", "fkt_joint"], "resnet18", 32, 256, 20, 5, "bf16-mixed",
              device_name, out_dir / "syncs_gpu_fused.md", f"{command} (syncs)")
    for size, variants in ((32, ["fused", "fused-host", "torchvision"]),
                           (96, ["fused", "torchvision"])):
        training.run(["simclr", "fkt_joint"], variants, "resnet18", size, 256, 10, 3, 2, None,
                     "bf16-mixed", device_name, out_dir / f"training_gpu_bf16_fused_{size}px.md",
                     f"{command} (training, {size} px)")
    # Compilation takes minutes per fit: one round of SimCLR, last, so that it cannot cost the
    # tables above.
    training.run(["simclr"], ["fused-compiled", "fused"], "resnet18", 32, 256, 20, 10, 1, None,
                 "bf16-mixed", device_name, out_dir / "training_gpu_bf16_compiled_32px.md",
                 f"{command} (CUDA graphs, 32 px)")
