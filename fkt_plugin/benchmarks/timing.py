"""Interleaved timing rounds and the tables they produce."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from tqdm import tqdm


def interleaved_medians(arms: Mapping[str, Callable[[], None]], rounds: int, warmup: int = 1,
                        synchronize: Callable[[], None] = lambda: None,
                        desc: str = "rounds") -> dict[str, float]:
    """Median seconds of each arm's call, the arms run in turn within every round.

    Interleaving spreads the noise of a shared machine (other jobs, clock changes) over all arms
    alike, so their ratio holds even when absolute times drift; every other round runs the arms
    in reverse order, so that going first or last favours no arm.

    Args:
        arms: Name → a call doing one unit of work.
        rounds: Timed rounds.
        warmup: Untimed rounds first (allocations, caches, lazy initialisation).
        synchronize: Waits for queued device work (``torch.cuda.synchronize`` on a GPU).
        desc: Progress bar label.
    """
    times: dict[str, list[float]] = {name: [] for name in arms}
    for r in tqdm(range(warmup + rounds), desc=desc, leave=False):
        for name, call in alternate(list(arms.items()), r):
            synchronize()
            start = time.perf_counter()
            call()
            synchronize()
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def alternate(items: list, round_index: int) -> list:
    """``items`` in order in even rounds, reversed in odd ones."""
    return items if round_index % 2 == 0 else items[::-1]


def machine_line(device: torch.device) -> str:
    """One line naming the hardware and versions a table was measured on."""
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        where = f"CPU ({torch.get_num_threads()} torch threads, {platform.processor() or 'cpu'})"
    return f"{where}; torch {torch.__version__}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_report(path: Path | None, title: str, command: str, machine: str, table: str,
                 notes: Sequence[str] = ()) -> None:
    """Prints the table and, if ``path`` is given, writes it as markdown with its command."""
    text = "\n".join([f"# {title}", "", f"Command: `{command}`", "", f"Machine: {machine}", "",
                      table, "", *notes]).rstrip() + "\n"
    print(text)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"written to {path}")
