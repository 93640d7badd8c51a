"""``fkt-bench syncs``: host-device synchronisations per training step of each method on a GPU,
and the line of code that makes each one.

A synchronisation (``.item()``, a device-to-host copy, ``nonzero``, boolean indexing) stalls the
host until the GPU's queue drains, so the next step's work cannot be queued behind the current
one. torch reports every one when ``torch.cuda.set_sync_debug_mode("warn")`` is on; the recorder
counts those warnings by the innermost frame in fkt-plugin's code (else Lightning's, else any).
"""

from __future__ import annotations

import logging
import tempfile
import traceback
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger
from tqdm import tqdm

import fkt_plugin
from fkt_plugin.benchmarks.timing import machine_line, markdown_table, write_report
from fkt_plugin.benchmarks.training import bench_cfg, synthetic_dataset
from fkt_plugin.data import FKTDataModule, ImageDataset
from fkt_plugin.errors import ConfigError
from fkt_plugin.methods import METHODS

# The text torch's warning starts with (c10/cuda/CUDAFunctions.cpp, warn_or_error_on_sync).
SYNC_WARNING = "called a synchronizing CUDA operation"
PACKAGE_ROOT = Path(fkt_plugin.__file__).resolve().parent
# The benchmark's own frames start every fit, so they are outer frames of every sync.
BENCHMARK_CODE = (PACKAGE_ROOT / "benchmarks", PACKAGE_ROOT / "cli" / "bench.py")


def call_site(frames: Sequence[traceback.FrameSummary]) -> tuple[str, str]:
    """Where a warning came from: ``(owner, "file:line (function)")``, owner ``fkt-plugin`` for
    the innermost frame in this package (the benchmark's own code aside), else
    ``Lightning`` for the innermost frame in Lightning, else ``other`` for the innermost
    frame."""
    for frame in reversed(frames):
        path = Path(frame.filename).resolve()
        if path.is_relative_to(PACKAGE_ROOT) and not any(path.is_relative_to(code)
                                                         for code in BENCHMARK_CODE):
            where = path.relative_to(PACKAGE_ROOT.parent).as_posix()
            return "fkt-plugin", f"{where}:{frame.lineno} ({frame.name})"
    lightning = [f for f in frames if "lightning" in Path(f.filename).as_posix()]
    owner, chosen = ("Lightning", lightning) if lightning else ("other", list(frames))
    if not chosen:
        return "other", "unknown"
    frame = chosen[-1]
    return owner, f"{'/'.join(Path(frame.filename).parts[-2:])}:{frame.lineno} ({frame.name})"


class SyncRecorder:
    """Counts torch's synchronisation warnings by call site while it is entered; every other
    warning goes on to the warning display as before.

    Example (on a GPU the warnings come from ``torch.cuda.set_sync_debug_mode("warn")``):
        >>> import warnings
        >>> with SyncRecorder() as recorder:
        ...     warnings.warn(SYNC_WARNING)
        >>> sum(recorder.sites.values())  # recorder.sites: a Counter of (owner, site)
        1
    """

    def __init__(self) -> None:
        self.sites: Counter[tuple[str, str]] = Counter()
        self._catch = warnings.catch_warnings()

    def __enter__(self) -> SyncRecorder:
        self._catch.__enter__()
        # "always": the default filter shows a warning once per line, which would undercount.
        warnings.simplefilter("always")
        self._show = warnings.showwarning
        warnings.showwarning = self._record
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._catch.__exit__(kind, error, trace)

    def _record(self, message: Warning | str, category: type[Warning], filename: str,
                lineno: int, file: TextIO | None = None, line: str | None = None) -> None:
        if SYNC_WARNING not in str(message):
            self._show(message, category, filename, lineno, file, line)
            return
        # The last two frames are this method and the warnings machinery.
        self.sites[call_site(traceback.extract_stack()[:-2])] += 1


class _SyncWindow(pl.Callback):
    """Turns torch's sync reporting on for ``steps`` whole steps after ``warmup`` steps: from the
    end of step ``warmup - 1`` (so the next batch's loading counts) to the end of the last."""

    def __init__(self, warmup: int, steps: int) -> None:
        self.first, self.last = warmup - 1, warmup + steps - 1

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        if batch_idx == self.first:
            torch.cuda.set_sync_debug_mode("warn")
        elif batch_idx == self.last:
            torch.cuda.set_sync_debug_mode("default")


def count_syncs(method: str, backbone: str, batch_size: int, precision: str, steps: int,
                warmup: int, dataset: ImageDataset, accelerator: str = "gpu"
                ) -> Counter[tuple[str, str]]:
    """Synchronisations in ``steps`` training steps of ``method``'s CIFAR-10 recipe (its own
    optimiser, kNN bank and loss terms), run as ``fkt-train`` runs it: the method class, the
    datamodule, Lightning's Trainer with its progress bar and CSV logger.

    Args:
        accelerator: ``gpu``; ``cpu`` only checks the machinery (torch reports no syncs there).
    """
    cfg = bench_cfg(method, "fused", backbone, batch_size, 0, precision, accelerator,
                    as_recipe=True)
    pl.seed_everything(0, verbose=False)
    model = METHODS[cfg.method](cfg)
    datamodule = FKTDataModule.from_cfg(cfg, dataset, labelled_only=False)
    with tempfile.TemporaryDirectory() as logs, SyncRecorder() as recorder:
        trainer = pl.Trainer(max_steps=warmup + steps, accelerator=accelerator, devices=1,
                             precision=cfg.precision, logger=CSVLogger(logs),
                             log_every_n_steps=cfg.log_every_n_steps,
                             enable_checkpointing=False, enable_model_summary=False,
                             limit_val_batches=0, callbacks=[_SyncWindow(warmup, steps)])
        try:
            trainer.fit(model, datamodule=datamodule)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return recorder.sites


def run(methods: Sequence[str], backbone: str, size: int, batch_size: int, steps: int,
        warmup: int, precision: str, device_name: str, out: Path | None, command: str) -> None:
    device = torch.device(device_name)
    if device.type != "cuda" or not torch.cuda.is_available():
        raise ConfigError(
            f"fkt-bench syncs counts host-device synchronisations of a CUDA device, and "
            f"--device is {device_name!r}"
            + ("" if torch.cuda.is_available() else " (no CUDA device is visible here)")
            + "; run it on a machine with a GPU, with --device cuda")
    if warmup < 1:
        raise ConfigError(f"--warmup must be at least 1 (the window starts after a whole "
                          f"step), got {warmup}")
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    # One epoch covers every step: the epoch-end work (train accuracy, kNN bank) is not per step.
    dataset = synthetic_dataset(batch_size * (warmup + steps + 2) * 4, size)
    totals, sites = [], []
    for method in tqdm(methods, desc="methods"):
        counts = count_syncs(method, backbone, batch_size, precision, steps, warmup, dataset)
        by_owner = Counter[str]()
        for (owner, site), n in counts.items():
            by_owner[owner] += n
            sites.append([method, owner, f"`{site}`", f"{n / steps:.2f}"])
        totals.append([method, f"{sum(counts.values()) / steps:.2f}",
                       *(f"{by_owner[o] / steps:.2f}" for o in ("fkt-plugin", "Lightning",
                                                                 "other"))])
    header = ["method", "syncs per step", "in fkt-plugin", "in Lightning", "elsewhere"]
    table = "\n\n".join([markdown_table(header, totals), "Where:",
                         markdown_table(["method", "owner", "call site", "per step"], sites)
                         if sites else "(none)"])
    notes = [
        f"{backbone}, {size} px synthetic images, batch {batch_size}, {precision}; each "
        "method's CIFAR-10 recipe (its optimiser, kNN bank and loss terms) with the fused "
        "engine's views, "
        f"run by Lightning's Trainer with its progress bar and CSV logger as fkt-train runs it. "
        f"Counted by torch.cuda.set_sync_debug_mode('warn') over {steps} steps after "
        f"{warmup} warm-up steps, batch loading included; validation and epoch ends are "
        "outside the window.",
    ]
    write_report(out, "Host-device synchronisations per training step", command,
                 machine_line(device), table, notes)
