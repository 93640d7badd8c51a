"""A sweep's report from its rows alone (``results.csv``'s content): mean ± std per arm and label
fraction, the labels each run used, the runs still rising, paired differences with their
intervals and a plain reading of them."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from fkt_plugin.args.compare import seeds_for
from fkt_plugin.evaluation.convergence import RISE_MARGIN
from fkt_plugin.paired import paired_difference, reading
from fkt_plugin.sweep.declaration import declaration_lines
from fkt_plugin.tables import write_rows

BOLD_MIN_SEEDS = 3
"""A column's best mean is bolded only where its cell has at least this many seeds."""

FAMILY_ERROR = 0.05
"""The chance, across all the paired intervals of a report, that any of them misses its true
difference, under Bonferroni's correction (each interval at 1 − FAMILY_ERROR / k)."""


def summarise(rows: list[dict[str, Any]], arms: list[str], fractions: list[float],
              metric: str) -> dict[str, dict[float, tuple[float, float, int]]]:
    """arm → fraction → (mean %, std %, n) of one metric."""
    table: dict[str, dict[float, tuple[float, float, int]]] = {}
    for arm in arms:
        for fraction in fractions:
            values = [100 * r[metric] for r in rows
                      if r["arm"] == arm and r["label_fraction"] == fraction and metric in r]
            if values:
                std = statistics.stdev(values) if len(values) > 1 else 0.0
                table.setdefault(arm, {})[fraction] = (statistics.mean(values), std, len(values))
    return table


def _by_seed(rows: list[dict[str, Any]], arm: str, fraction: float,
             metric: str) -> dict[int, float]:
    """seed → metric (in %) of one arm at one fraction."""
    return {int(r["seed"]): 100 * r[metric] for r in rows
            if r["arm"] == arm and r["label_fraction"] == fraction and metric in r}


def paired_rows(rows: list[dict[str, Any]], pairs: list[tuple[str, str]],
                fractions: list[float], metric: str,
                confidence: float = 0.95) -> list[dict[str, Any]]:
    """One row per pair and fraction: the mean of ``a − b`` (in %) over the seeds both arms
    finished, its t-interval at ``confidence`` and n."""
    out = []
    for a, b in pairs:
        for fraction in fractions:
            difference = paired_difference(_by_seed(rows, a, fraction, metric),
                                           _by_seed(rows, b, fraction, metric), confidence)
            if difference is not None:
                out.append({"arm": f"{a} − {b}", "label_fraction": fraction,
                            "paired_metric": metric, "mean_difference": difference.mean,
                            "ci95_low": difference.low, "ci95_high": difference.high,
                            "n": difference.n, "text": str(difference)})
    return out


def _fraction_table(names: list[str], fractions: list[float], cell: Callable[[str, float], str],
                    corner: str = "arm") -> str:
    """A markdown table of one text per name (rows: arms or pairs) and label fraction."""
    lines = [f"| {corner} | " + " | ".join(f"{100 * f:g}% labels" for f in fractions) + " |",
             "|---" * (len(fractions) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(cell(name, f) for f in fractions) + " |"
              for name in names]
    return "\n".join(lines)


def paired_table(differences: list[dict[str, Any]], fractions: list[float]) -> str:
    """``a − b: +x.xx [lo, hi] (n)`` per pair (rows) and label fraction (columns)."""
    texts = {(d["arm"], d["label_fraction"]): d["text"] for d in differences}
    pairs = list(dict.fromkeys(d["arm"] for d in differences))
    return _fraction_table(pairs, fractions, lambda pair, f: texts.get((pair, f), "-"),
                           corner="a − b")


def markdown_table(summary: dict[str, dict[float, tuple[float, float, int]]],
                   fractions: list[float]) -> str:
    """Mean ± std (n) per arm (rows) and label fraction (columns); the best mean in bold where
    its cell holds at least :data:`BOLD_MIN_SEEDS` runs (fewer support no ranking)."""
    best = {f: max((cells[f][0] for cells in summary.values() if f in cells), default=None)
            for f in fractions}

    def cell(arm: str, f: float) -> str:
        if f not in summary[arm]:
            return "-"
        mean, std, n = summary[arm][f]
        text = f"{mean:.2f} ± {std:.2f} (n={n})" if n > 1 else f"{mean:.2f} (n=1)"
        return f"**{text}**" if mean == best[f] and n >= BOLD_MIN_SEEDS else text
    return _fraction_table(list(summary), fractions, cell)


def labels_table(rows: list[dict[str, Any]], arms: list[str], fractions: list[float]) -> str:
    """``train + val = total`` labels per arm and fraction (every seed draws the same counts;
    a cell whose seeds differ shows each), so that the columns' label budgets can be read."""
    def cell(arm: str, f: float) -> str:
        counts = dict.fromkeys(
            f"{r['labels_train']} + {r['labels_val']} = {r['labels_total']}" for r in rows
            if r["arm"] == arm and r["label_fraction"] == f and "labels_total" in r)
        return " / ".join(counts) or "-"
    return _fraction_table(arms, fractions, cell)


def still_rising_table(rows: list[dict[str, Any]], arms: list[str],
                       fractions: list[float]) -> str:
    """``rising of trained`` runs per arm and fraction (``-`` where the cell's scores come from
    frozen-feature probes, which have no validation curve)."""
    def cell(arm: str, f: float) -> str:
        flags = [bool(r["val_still_rising"]) for r in rows
                 if r["arm"] == arm and r["label_fraction"] == f and "val_still_rising" in r]
        return f"{sum(flags)} of {len(flags)}" if flags else "-"
    return _fraction_table(arms, fractions, cell)


COMMAND_PREFIX = "Command: `"


def recorded_command(out: Path) -> str | None:
    """The command a sweep's existing results.md quotes (None: no report yet)."""
    report = out / "results.md"
    if not report.is_file():
        return None
    for line in report.read_text().splitlines():
        if line.startswith(COMMAND_PREFIX) and line.endswith("`"):
            return line.removeprefix(COMMAND_PREFIX)[:-1]
    return None


def write_report(cfg: DictConfig, out: Path, rows: list[dict[str, Any]],
                 command: str = "") -> str:
    """Writes results.csv and results.md under ``out`` from the rows alone; returns the
    markdown.

    Args:
        cfg: The validated compare cfg (arms, fractions, seeds, pairs).
        out: The sweep's folder.
        rows: One row per finished job (:func:`fkt_plugin.sweep.execute.run_sweep`).
        command: The command line, quoted in the report.
    """
    out.mkdir(parents=True, exist_ok=True)
    write_rows(out / "results.csv", rows)
    arms = [str(arm.name) for arm in cfg.arms]
    fractions = [float(f) for f in cfg.fractions]
    metrics = [("acc1", "Test accuracy (%)"), ("f1_macro", "Test macro F1 (%)")]
    if any("kappa_quadratic" in row for row in rows):
        metrics.append(("kappa_quadratic", "Test quadratic weighted kappa (x100)"))
    epochs = "; ".join(f"{arm.name}: {_epochs_text(arm.epochs)} epochs" if arm.steps is None
                       else f"{arm.name}: {_epochs_text(arm.steps)} steps" for arm in cfg.arms)
    seeds = "; ".join(f"{100 * f:g}%: {seeds_for(cfg, f)}" for f in fractions)
    declared = declaration_lines(out)
    parts = ["\n".join(declared)] if declared else []
    parts += [f"Mean ± std over seeds ({seeds}; n = finished runs per cell); "
             f"best mean per column in bold where n >= {BOLD_MIN_SEEDS}. {epochs}."]
    if command:
        parts.append(f"{COMMAND_PREFIX}{command}`")
    for key, title in metrics:
        summary = summarise(rows, arms, fractions, key)
        parts.append(f"### {title}\n\n{markdown_table(summary, fractions)}")
    if any("labels_total" in row for row in rows):
        parts.append("### Labels used per run (training + validation = total)\n\n"
                     + labels_table(rows, arms, fractions))
    if any("val_still_rising" in row for row in rows):
        parts.append("### Runs that ended with their validation accuracy still rising\n\n"
                     "Runs whose last validation was their best and at least "
                     f"{100 * RISE_MARGIN:g} point above the one at three quarters of their "
                     "steps, of the trained runs per cell: their schedule was short for them.\n\n"
                     + still_rising_table(rows, arms, fractions))
    pairs = [(str(a), str(b)) for a, b in cfg.paired]
    if pairs:
        differences = paired_rows(rows, pairs, fractions, "acc1")
        parts.append("### Paired differences of test accuracy (points)\n\nMean of a − b over "
                     "the seeds both arms finished (same splits and labelled images per seed), "
                     "with its 95% t-interval.\n\n" + paired_table(differences, fractions))
        write_rows(out / "results.csv", rows + differences)
        intervals = sum(d["n"] >= 2 for d in differences)
        confidence = 1 - FAMILY_ERROR / intervals if intervals > 1 else None
        if confidence is not None:
            parts.append(
                f"{intervals} intervals are read above, each at 95% on its own: uncorrected "
                "for multiplicity, the chance that at least one of them misses its true "
                f"difference can reach {intervals} × 5%. With Bonferroni's correction each is a "
                f"{100 * confidence:.4g}% interval, so that all of them hold their true "
                "differences together at least 95% of the time:\n\n"
                + paired_table(paired_rows(rows, pairs, fractions, "acc1", confidence),
                               fractions))
        sentences = []
        for a, b in pairs:
            for f in fractions:
                scores_a, scores_b = _by_seed(rows, a, f, "acc1"), _by_seed(rows, b, f, "acc1")
                d = paired_difference(scores_a, scores_b)
                if d is None:
                    continue
                sentence = reading(a, b, f"at {100 * f:g}% labels", d)
                if confidence is not None and d.excludes_zero:
                    strict = paired_difference(scores_a, scores_b, confidence)
                    sentence += (" It still excludes 0 with Bonferroni's correction."
                                 if strict is not None and strict.excludes_zero else
                                 " With Bonferroni's correction for the "
                                 f"{intervals} intervals it holds 0.")
                sentences.append(sentence)
        parts.append("### Reading (from the paired differences alone)\n\n"
                     + "\n".join(f"- {s}" for s in sentences))
    report = "\n\n".join(parts) + "\n"
    (out / "results.md").write_text(report)
    return report


def _epochs_text(epochs: Any) -> str:
    if isinstance(epochs, DictConfig):
        return ", ".join(f"{v} at {100 * float(str(f)):g}%" for f, v in epochs.items())
    return str(epochs)


