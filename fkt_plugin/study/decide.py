"""A study's recommendation, read off the paired differences alone: the best arm where its
paired interval against every other arm lies above 0; otherwise the arms that cannot be told
apart from the best, and among them the cheapest."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from fkt_plugin.paired import PairedDifference, paired_difference


@dataclass(frozen=True)
class Recommendation:
    """The answer at one label fraction.

    Attributes:
        best: The arm of highest mean test accuracy.
        tied: The arms whose paired interval against ``best`` includes 0 (``best`` first).
        chosen: ``best`` where nothing ties with it, else the cheapest of ``tied``.
        against_best: Each other arm's paired difference ``best − arm`` (points).
        seeds: The seeds every arm finished.
        labels: Labels per run (training + validation).
    """

    fraction: float
    best: str
    tied: list[str]
    chosen: str
    against_best: dict[str, PairedDifference]
    seeds: int
    labels: int | None
    seconds: dict[str, float]

    @property
    def clear(self) -> bool:
        return self.tied == [self.best]

    def sentence(self) -> str:
        """The recommendation in one or two sentences (method names in backticks: some hold
        commas)."""
        where = (f"At {self.labels:,} labels" if self.labels is not None
                 else f"At {100 * self.fraction:g}% of the labels")
        seeds = f"{self.seeds} seeds"
        best, chosen = f"`{self.best}`", f"`{self.chosen}`"
        if self.clear:
            return (f"{where}, {best} gives the best classifier: its test accuracy is above "
                    f"every other method's by a paired 95% interval that excludes 0 ({seeds}).")
        cheapest = ("it is the cheapest" if self.chosen == self.best
                    else f"{chosen} is the cheapest of them")
        if len(self.tied) == len(self.against_best) + 1:
            return (f"{where}, no method is distinguishable from {best} ({seeds}); "
                    f"{cheapest}: use {chosen}.")
        others = [f"`{arm}`" for arm in self.tied[1:]]
        listed = others[0] if len(others) == 1 else f"{', '.join(others[:-1])} and {others[-1]}"
        return (f"{where}, {listed} cannot be told apart from {best} ({seeds}; every other "
                f"method is below {best} by an interval that excludes 0); {cheapest}: use "
                f"{chosen}.")


def _by_seed(rows: list[dict[str, Any]], arm: str, fraction: float) -> dict[int, float]:
    return {int(r["seed"]): 100 * float(r["acc1"]) for r in rows
            if r["arm"] == arm and float(r["label_fraction"]) == fraction and "acc1" in r}


def recommend(rows: list[dict[str, Any]], arms: list[str], fraction: float,
              seconds: dict[str, float]) -> Recommendation | None:
    """The recommendation at ``fraction`` from the study's rows (``results.csv``), over the
    seeds every arm finished; None where fewer than two arms or two seeds are shared.

    Args:
        rows: One row per job: arm, label_fraction, seed, acc1 (a fraction), labels_total.
        arms: The arms, in the study's order (ties of the mean go to the first).
        fraction: The label fraction.
        seconds: Each arm's mean seconds per seed (its training and evaluation runs).
    """
    scores = {arm: _by_seed(rows, arm, fraction) for arm in arms}
    shared = set.intersection(*(set(s) for s in scores.values())) if scores else set()
    present = [arm for arm in arms if scores[arm]]
    if len(present) < 2 or len(shared) < 2 or len(present) < len(arms):
        return None
    scores = {arm: {s: v for s, v in values.items() if s in shared}
              for arm, values in scores.items()}
    means = {arm: statistics.mean(values.values()) for arm, values in scores.items()}
    best = max(arms, key=lambda arm: means[arm])
    against: dict[str, PairedDifference] = {}
    for arm in arms:
        if arm != best:
            difference = paired_difference(scores[best], scores[arm])
            assert difference is not None  # the arms share every seed in ``shared``
            against[arm] = difference
    tied = [best] + [arm for arm in arms if arm != best and not against[arm].low > 0]
    chosen = best if len(tied) == 1 else min(tied, key=lambda arm: seconds.get(arm, 0.0))
    labels = {int(r["labels_total"]) for r in rows
              if float(r["label_fraction"]) == fraction and r.get("labels_total") not in
              (None, "")}
    return Recommendation(fraction, best, tied, chosen, against, len(shared),
                          labels.pop() if len(labels) == 1 else None, seconds)
