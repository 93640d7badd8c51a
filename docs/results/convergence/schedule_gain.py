"""What doubling the schedule bought each arm trained from scratch, on the same splits and seeds.

A secondary reading of the convergence study, written before any of its results had been read:
the still-rising rule (a point of validation gained over a run's last quarter) cannot tell the
gain of a cosine schedule's annealing tail from under-training, so this compares schedules
instead. For each arm, seed by seed at 10% labels: the test accuracy (scored at the last step)
of the longer schedule minus the shorter one's, its 95% paired t-interval, and each schedule's
mean validation gain over its last quarter. A run of the earlier study and of this one with the
same seed share their labelled images and validation split (``data.split_seed = seed``, the same
label budget); they differ in schedule length and in the implementation of the same augmentation
settings (kornia's containers then, the fused engine now).

Run from the project root once both sweeps have their ``results.csv``:

    python docs/results/convergence/schedule_gain.py --out docs/results/convergence/schedule_gain.md
"""

from __future__ import annotations

import argparse
import csv
import statistics
from dataclasses import dataclass
from pathlib import Path

from fkt_plugin.evaluation.plots import read_training_metric
from fkt_plugin.paired import paired_difference

EARLIER = Path("docs/results/fashion_mnist/sweep_last")
THIS = Path("docs/results/convergence/sweep")
FRACTION = 0.1


@dataclass(frozen=True)
class Schedule:
    """One arm of one sweep: where its runs are and how long they trained."""

    sweep: Path
    arm: str
    steps: int


A_630 = Schedule(EARLIER, "A fkt_joint", 630)
B_630 = Schedule(EARLIER, "B fkt_joint, ssl_weight=0", 630)
C_630 = Schedule(EARLIER, "C supervised, weak views", 630)
COMPARISONS: list[tuple[Schedule, Schedule]] = [
    (A_630, Schedule(THIS, "A fkt_joint", 1260)),
    (B_630, Schedule(THIS, "B fkt_joint, ssl_weight=0", 1260)),
    (Schedule(THIS, "C\" supervised, matched presentations", 315), C_630),
    (C_630, Schedule(THIS, "C supervised, weak views", 1260)),
]


def _rows(schedule: Schedule) -> list[dict[str, str]]:
    with open(schedule.sweep / "results.csv", newline="") as handle:
        return [row for row in csv.DictReader(handle)
                if row["arm"] == schedule.arm and float(row["label_fraction"]) == FRACTION]


def test_by_seed(schedule: Schedule) -> dict[int, float]:
    """seed → test accuracy (%) of the arm's runs."""
    return {int(row["seed"]): 100 * float(row["acc1"]) for row in _rows(schedule)}


def last_quarter_gain(schedule: Schedule) -> float:
    """Mean over the arm's runs of validation accuracy (points) at the last validation minus
    the one nearest three quarters of the steps: what the still-rising rule reads."""
    gains = []
    for row in _rows(schedule):
        curve = read_training_metric(schedule.sweep / "runs" / row["run"] / "metrics.csv",
                                     "val_acc1")
        step, last = curve[-1]
        _, earlier = min(curve[:-1], key=lambda point: abs(point[0] - 0.75 * step))
        gains.append(100 * (last - earlier))
    return statistics.mean(gains)


def table() -> str:
    """The markdown table: one row per comparison."""
    lines = ["| arm | shorter | longer | test, shorter | test, longer | longer − shorter "
             "(paired, 95% CI) | last-quarter validation gain, shorter → longer |",
             "|---|---|---|---|---|---|---|"]
    for short, long in COMPARISONS:
        a, b = test_by_seed(long), test_by_seed(short)
        difference = paired_difference(a, b)
        if difference is None:
            raise SystemExit(f"{long.arm} ({long.steps} steps) and {short.arm} ({short.steps} "
                             "steps) share no seed: has the study finished?")
        arm = long.arm if long.arm == short.arm else f"{short.arm} → {long.arm}"
        lines.append(
            f"| {arm} | {short.steps:,} | {long.steps:,} | "
            f"{statistics.mean(b.values()):.2f} | {statistics.mean(a.values()):.2f} | "
            f"{difference} | {last_quarter_gain(short):+.2f} → {last_quarter_gain(long):+.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the table to this markdown file")
    args = parser.parse_args()
    text = table()
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
