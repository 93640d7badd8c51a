"""Paired comparisons of two arms over seeds: the mean difference and its t-interval.

Runs of two arms with the same seed share their validation split and labelled subset, so the
per-seed differences remove what the seed changes in both (which images carry labels, the
initialisation's luck) and a paired interval is narrower than one from two independent means.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass

from scipy import stats


@dataclass(frozen=True)
class PairedDifference:
    """Mean of ``a − b`` over the seeds both have, with its two-sided t-interval (NaN bounds
    when n < 2)."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies wholly on one side of 0 (never without an interval)."""
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        if self.n < 2:
            return f"{self.mean:+.2f} (n={self.n}, no interval)"
        return f"{self.mean:+.2f} [{self.low:+.2f}, {self.high:+.2f}] (n={self.n})"


def paired_difference(a: Mapping[int, float], b: Mapping[int, float],
                      confidence: float = 0.95) -> PairedDifference | None:
    """``a − b`` over the seeds in both (seed → value); None if they share no seed.

    The interval is mean ± t(1 − (1 − confidence) / 2, n − 1) · sd / sqrt(n), Student's t on the
    n per-seed differences.
    """
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    differences = [a[s] - b[s] for s in seeds]
    mean = statistics.mean(differences)
    n = len(differences)
    if n < 2:
        return PairedDifference(mean, math.nan, math.nan, n)
    half = (stats.t.ppf(1 - (1 - confidence) / 2, n - 1) * statistics.stdev(differences)
            / math.sqrt(n))
    return PairedDifference(mean, mean - half, mean + half, n)


def reading(a: str, b: str, where: str, difference: PairedDifference) -> str:
    """One plain sentence on what a paired difference supports (``where``: e.g. "at 10%
    labels"); nothing is claimed from one seed or from an interval that holds 0."""
    if difference.n < 2:
        return (f"{a} − {b} {where}: {difference.mean:+.2f} points from one seed; no interval, "
                "so no evidence either way (run more seeds).")
    if difference.excludes_zero:
        better, worse = (a, b) if difference.low > 0 else (b, a)
        return (f"{a} − {b} {where}: {difference}; {better} beats {worse} (the 95% interval "
                "excludes 0).")
    return (f"{a} − {b} {where}: {difference}; the 95% interval holds 0: no difference "
            f"detected with n={difference.n}.")
