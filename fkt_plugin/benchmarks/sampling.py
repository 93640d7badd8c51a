"""``fkt-bench guided``: seconds to draw one epoch of G-SimCLR's guided batches (order and pair
statistics) against one epoch of uniform batches, on one CPU thread, interleaved."""

from __future__ import annotations

from pathlib import Path

import torch

from fkt_plugin.benchmarks.timing import (
    interleaved_medians,
    machine_line,
    markdown_table,
    write_report,
)
from fkt_plugin.data.samplers import GuidedBatchSampler, TrainBatchSampler


def run(images: int, k: int, batch_size: int, rounds: int, out: Path | None,
        command: str) -> None:
    """Times both samplers' epochs over ``images`` images in ``k`` random clusters (with 10
    random true classes for the false-negative diagnostic); prints and writes the table."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        generator = torch.Generator().manual_seed(0)
        clusters = torch.randint(0, k, (images,), generator=generator)
        classes = torch.randint(0, 10, (images,), generator=generator)
        guided = GuidedBatchSampler(clusters, batch_size, true_labels=classes)
        uniform = TrainBatchSampler(classes, batch_size)

        def epoch(sampler: GuidedBatchSampler | TrainBatchSampler) -> None:
            sampler.set_epoch(sampler.epoch + 1)
            for _ in sampler:
                pass

        median = interleaved_medians({"guided (G-SimCLR)": lambda: epoch(guided),
                                      "uniform": lambda: epoch(uniform)}, rounds)
    finally:
        torch.set_num_threads(threads)
    rows = [[name, f"{seconds:.3g}"] for name, seconds in median.items()]
    notes = [f"{images:,} images in {k} random clusters, batch {batch_size}, one CPU thread; "
             "an epoch is the whole order plus iterating its batches as index lists (guided: "
             "with the same-cluster and same-class pair counts). Medians of "
             f"{rounds} interleaved rounds after one warm-up round."]
    write_report(out, "Guided batches: one epoch's order", command,
                 machine_line(torch.device("cpu")) + " (1 thread for this table)",
                 markdown_table(["sampler", "median s per epoch"], rows), notes)
