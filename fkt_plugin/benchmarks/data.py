"""Memory and first-batch latency of the datamodule over a memory-mapped training split.

A uint8 array of a dataset's size (by default STL-10's unlabelled pool, 100,000 x 3 x 96 x 96 =
2.8 GB) is written to a file and opened as a memory map, as the decode cache and the STL-10
adapter open theirs. Each arm then builds the datamodule on it (validation split, labelled
fraction) and draws the first training batch, in a fresh process so that its peak resident memory
is its own:

* ``views``: the splits as they are, index views over the memory map (only the batch's images
  are read);
* ``copies``: every split materialised in memory, what carving a split by indexing the tensor
  did before splits were views.
"""

from __future__ import annotations

import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from fkt_plugin.augmentation.schema import parse_pipelines
from fkt_plugin.benchmarks.timing import alternate, markdown_table, write_report
from fkt_plugin.data.datamodule import FKTDataModule
from fkt_plugin.data.dataset import ImageDataset, ImageSplit

ARMS = ("views", "copies")
MEAN, STD = (0.45, 0.45, 0.45), (0.25, 0.25, 0.25)


def write_array(path: Path, images: int, size: int, chunk: int = 4096) -> None:
    """Writes ``images`` x 3 x ``size`` x ``size`` seeded random uint8 pixels to ``path``."""
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8,
                                      shape=(images, 3, size, size))
    rng = np.random.default_rng(0)
    for start in tqdm(range(0, images, chunk), desc=f"writing {path.name}", leave=False):
        stop = min(start + chunk, images)
        array[start:stop] = rng.integers(0, 256, size=(stop - start, 3, size, size),
                                         dtype=np.uint8)
    array.flush()
    del array


def _measure(path: str, arm: str, batch_size: int, queue: multiprocessing.Queue) -> None:
    """Child process: builds the datamodule and draws one batch; reports seconds and peak RSS."""
    start = time.perf_counter()
    images = torch.from_numpy(np.load(path, mmap_mode="c"))
    targets = torch.arange(len(images)) % 10
    split = ImageSplit(images, targets)
    dataset = ImageDataset(split, split, tuple(str(c) for c in range(10)), MEAN, STD)
    size = int(images.shape[-1])
    pipelines = parse_pipelines(OmegaConf.create([{"crop_size": size}]))
    datamodule = FKTDataModule(dataset, pipelines, batch_size, label_fraction=0.1)
    if arm == "copies":
        datamodule.val = datamodule.val.materialise()
        datamodule.train = datamodule.train.materialise()
    _, batch, _ = next(iter(datamodule.train_dataloader()))
    seconds = time.perf_counter() - start
    queue.put((seconds, peak_resident_kib() / 2**20, tuple(batch.shape)))


def peak_resident_kib() -> int:
    """This process's peak resident memory (Linux ``VmHWM``). Not ``ru_maxrss``: that keeps the
    high-water mark of the parent that forked this process before it exec'd."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/self/status has no VmHWM line: fkt-bench data needs Linux")


def measure(path: Path, arm: str, batch_size: int) -> tuple[float, float]:
    """Seconds to the first batch and peak resident GiB of one arm, in a fresh process."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_measure, args=(str(path), arm, batch_size, queue))
    child.start()
    seconds, peak_gib, _ = queue.get()
    child.join()
    return seconds, peak_gib


def run(images: int, size: int, batch_size: int, rounds: int, folder: Path | None,
        out: Path | None, command: str) -> None:
    """Writes the array (in ``folder`` or a temporary one), measures every arm ``rounds`` times
    interleaved, prints and writes the table."""
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        path = Path(tmp) / f"images-{images}x3x{size}x{size}.npy"
        write_array(path, images, size)
        results: dict[str, list[tuple[float, float]]] = {arm: [] for arm in ARMS}
        for r in tqdm(range(rounds), desc="rounds", leave=False):
            for arm in alternate(list(ARMS), r):
                results[arm].append(measure(path, arm, batch_size))
    gib = images * 3 * size * size / 2**30
    rows: list[Sequence[object]] = []
    for arm in ARMS:
        seconds = statistics.median(s for s, _ in results[arm])
        peak = statistics.median(p for _, p in results[arm])
        rows.append([arm, f"{peak:.2f}", f"{peak / gib:.2f}", f"{seconds:.2f}"])
    header = ["splits", "peak resident GiB", "peak / array size", "first batch s"]
    notes = [
        f"Array: {images:,} x 3 x {size} x {size} uint8 = {gib:.2f} GiB, memory-mapped "
        f"copy-on-write from a file; datamodule with a 10% validation split and 10% labels, "
        f"batch {batch_size}; each measurement in a fresh process (peak = its VmHWM, which "
        f"includes the interpreter and torch, ~0.8 GiB); medians of {rounds} interleaved rounds.",
        "views: the splits are row indices into the memory map. copies: each split "
        "materialised in memory, as when carving a split indexed the image tensor.",
    ]
    write_report(out, "Datamodule memory and first-batch latency", command,
                 f"CPU; torch {torch.__version__}", markdown_table(header, rows), notes)
