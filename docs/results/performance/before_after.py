"""Views per second of the engine before the fused one (kornia's containers with the batch-order
colour jitter, commit 47f1c34) and of the fused engine, interleaved in one process.

Run from the project root, after putting the earlier package beside this one under another
name (its own imports renamed so that both load together):

    git worktree add ../before 47f1c34
    mkdir -p ../before_pkg && cp -r ../before/fkt_plugin ../before_pkg/fkt_plugin_before
    grep -rl "fkt_plugin" ../before_pkg/fkt_plugin_before | \\
        xargs sed -i 's/\\bfkt_plugin\\b/fkt_plugin_before/g'
    PYTHONPATH=../before_pkg python docs/results/performance/before_after.py \\
        --out docs/results/performance/before_after_cpu.md
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import fkt_plugin_before.augmentation as before
import torch

from fkt_plugin.augmentation import DeviceAugmentation
from fkt_plugin.benchmarks.augmentation import MEAN, STD, preset_pipelines, synthetic_images
from fkt_plugin.benchmarks.timing import (
    interleaved_medians,
    machine_line,
    markdown_table,
    write_report,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 96, 224])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        images = synthetic_images(args.batch_size, size, torch.device("cpu"))
        for preset in ("simclr", "byol"):
            pipelines = preset_pipelines(preset, size)
            old = before.DeviceAugmentation(pipelines, MEAN, STD)
            new = DeviceAugmentation(pipelines, MEAN, STD)
            medians = interleaved_medians({"before": lambda m=old: m(images),
                                           "fused": lambda m=new: m(images)},
                                          args.rounds, desc=f"{preset} {size}px")
            rate = {name: args.batch_size / s for name, s in medians.items()}
            rows.append([preset, size, f"{rate['before']:,.0f}", f"{rate['fused']:,.0f}",
                         f"{rate['fused'] / rate['before']:.2f}x"])
    header = ["views", "px", "before (kornia containers) img/s", "fused img/s",
              "fused / before"]
    notes = [f"Batch {args.batch_size}, two views per image (the STL-10 presets, crops at the "
             f"image size), medians of {args.rounds} interleaved rounds after one warm-up; both "
             "engines in one process on the CPU, with their own CPU chunking."]
    command = shlex.join(["python", "docs/results/performance/before_after.py", *sys.argv[1:]])
    write_report(args.out, "The fused engine against the engine before it (CPU)", command,
                 machine_line(torch.device("cpu")), markdown_table(header, rows), notes)


if __name__ == "__main__":
    main()
