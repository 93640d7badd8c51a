"""A study's answer: ``report.md``, and the same page as a self-contained ``report.html`` (the
pictures inline, readable offline), opening with the recommendation."""

from __future__ import annotations

import base64
import html
import math
import re
from pathlib import Path
from typing import Any

import markdown
from scipy import stats

from fkt_plugin.study.decide import Recommendation
from fkt_plugin.study.plan import StudyPlan, budget_text
from fkt_plugin.sweep.report import markdown_table, still_rising_table, summarise

PICTURES = (("accuracy_vs_fraction.png", "Test accuracy against the label fraction"),
            ("training_curves.png", "Validation accuracy against optimiser steps (first seed)"),
            ("pretraining_knn.png", "Each pre-training's kNN accuracy (first seed)"))
MAX_SEEDS_SUGGESTED = 100


def seeds_to_separate(difference_mean: float, low: float, high: float, n: int) -> int | None:
    """Seeds at which a paired difference of this mean and spread would have a 95% interval
    excluding 0 (None: more than :data:`MAX_SEEDS_SUGGESTED`, or no spread to read)."""
    if n < 2 or not math.isfinite(low) or difference_mean == 0:
        return None
    spread = (high - low) / 2 * math.sqrt(n) / stats.t.ppf(0.975, n - 1)
    for seeds in range(n + 1, MAX_SEEDS_SUGGESTED + 1):
        if stats.t.ppf(0.975, seeds - 1) * spread / math.sqrt(seeds) < abs(difference_mean):
            return seeds
    return None


def _sharpen(answer: Recommendation) -> list[str]:
    """What would separate the arms tied with the best, from the observed spread."""
    lines = []
    for arm in answer.tied[1:]:
        d = answer.against_best[arm]
        seeds = seeds_to_separate(d.mean, d.low, d.high, d.n)
        lines.append(
            f"{answer.best} − {arm}: {d}; " + (
                f"about {seeds} seeds would give an interval that excludes 0 if the mean "
                "difference and its spread stay as observed" if seeds is not None else
                f"even {MAX_SEEDS_SUGGESTED} seeds would not separate them at this difference: "
                "for practical purposes they are equal here"))
    return lines


def write_study_report(out: Path, plan: StudyPlan, answers: list[Recommendation],
                       rows: list[dict[str, Any]], arms: list[str],
                       declared: list[str], delivered: list[str]) -> tuple[Path, Path]:
    """Writes ``report.md`` and ``report.html`` under ``out``.

    Args:
        out: The study's folder (the pictures of its sweep are there).
        plan: The plan the study ran.
        answers: One recommendation per fraction that has one.
        rows: The sweep's rows.
        arms: The arms in the study's order.
        declared: The declaration's lines (when and under which design sha).
        delivered: Lines on the delivered model (empty: none).
    """
    fractions = [float(f) for f in plan.fractions]
    facts = plan.facts
    parts = ["# Which method for these images?"]
    if answers:
        parts.append("**Recommendation.** " + " ".join(a.sentence() for a in answers))
    else:
        parts.append("**No recommendation yet**: fewer than two seeds of every arm have "
                     "finished; run the same command again to continue the study.")
    if delivered:
        parts.append("### The delivered model\n\n" + "\n".join(f"- {line}" for line in delivered))
    parts.append(
        "### The study\n\n"
        f"- Data: {facts['dataset']}, {len(facts['class_names'])} classes, "
        f"{sum(facts['labelled']):,} labelled and {facts['unlabelled']:,} unlabelled training "
        f"images, {facts['test']:,} test images, {facts['image_size']} px.\n"
        f"- Plan: the {plan.family} recipes with the {plan.backbone} backbone; every arm "
        f"{plan.steps} optimiser steps (matched steps; fine-tuning as many), seeds "
        f"{plan.seeds}, label fractions {fractions}; validation labels inside the budget, the "
        "model of the last step scored.\n"
        f"- Machine: {plan.machine}.\n"
        f"- Budget: {budget_text(plan.budget_seconds)}; the pilot took "
        f"{budget_text(plan.pilot_seconds)} and estimated the study at "
        f"{budget_text(plan.estimate_seconds)}.\n"
        + "".join(f"- {line}\n" for line in declared))
    summary = summarise(rows, arms, fractions, "acc1")
    parts.append("### Test accuracy (%)\n\nMean ± std over seeds (n = finished runs); the best "
                 "mean in bold where n >= 3.\n\n" + markdown_table(summary, fractions))
    for answer in answers:
        where = f"{100 * answer.fraction:g}% of the labels"
        lines = [f"| {answer.best} − {arm} | {d} | "
                 f"{'cannot be told apart' if arm in answer.tied else 'excludes 0'} |"
                 for arm, d in answer.against_best.items()]
        multiplicity = (f" {len(lines)} intervals are read here, each on its own: uncorrected "
                        "for multiplicity, so the chance that some arm is set below the best by "
                        "chance alone can exceed 5%." if len(lines) > 1 else "")
        parts.append(f"### Paired differences against the best mean ({where})\n\n"
                     "Test accuracy points, mean over the shared seeds with its 95% "
                     "t-interval (same splits and labelled images per seed)."
                     f"{multiplicity}\n\n"
                     "| best − arm | difference | |\n|---|---|---|\n" + "\n".join(lines))
    labels = sorted({(float(r["label_fraction"]), f"{r['labels_train']} + {r['labels_val']} = "
                      f"{r['labels_total']}") for r in rows if "labels_total" in r})
    if labels:
        parts.append("### Labels per run (training + validation = total)\n\n"
                     + "\n".join(f"- {100 * f:g}%: {text}" for f, text in labels))
    rising_rows = [r for r in rows if "val_still_rising" in r]
    if rising_rows:
        parts.append("### Runs still rising at their last step\n\n"
                     + still_rising_table(rows, arms, fractions))
    seconds = answers[0].seconds if answers else {}
    if seconds:
        parts.append("### Cost per arm\n\nMeasured training seconds per seed: the arm's "
                     "training run (a shared pre-training counted whole for every arm that uses "
                     "it) and its fine-tuning run; fitting a probe on frozen features is not "
                     "counted.\n\n"
                     "| arm | seconds per seed |\n|---|---|\n"
                     + "\n".join(f"| {arm} | {seconds[arm]:.0f} |" for arm in arms
                                 if arm in seconds))
    rising = sum(bool(r["val_still_rising"]) for r in rising_rows)
    sharpen = [line for answer in answers for line in _sharpen(answer)]
    if rising:
        sharpen.append(f"{rising} run(s) ended with their validation accuracy still rising: a "
                       "longer schedule (a larger budget) may change the ranking")
    if sharpen:
        parts.append("### What would sharpen the answer\n\n"
                     + "\n".join(f"- {line}" for line in sharpen))
    pictures = [(name, title) for name, title in PICTURES if (out / name).is_file()]
    if pictures:
        parts.append("### Pictures\n\n" + "\n\n".join(f"![{title}]({name})"
                                                      for name, title in pictures))
    parts.append("The full comparison (every pair's difference, macro F1) is in results.md; "
                 "the plan in plan.json, the declared design in declaration.json, the runs in "
                 "runs/.")
    text = "\n\n".join(parts) + "\n"
    report = out / "report.md"
    report.write_text(text)
    page = out / "report.html"
    page.write_text(to_html(text, out))
    return report, page


STYLE = """body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.45}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:.3em .6em}
th{background:#eee}img{max-width:100%}"""


def to_html(text: str, folder: Path) -> str:
    """The markdown as one HTML page with every picture inline (a data: URI)."""
    body = markdown.markdown(text, extensions=["tables"])

    def inline(match: re.Match[str]) -> str:
        path = folder / html.unescape(match.group(1))
        if not path.is_file():
            return match.group(0)
        data = base64.b64encode(path.read_bytes()).decode()
        return f'src="data:image/png;base64,{data}"'

    body = re.sub(r'src="([^"]+\.png)"', inline, body)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>fkt-study report</title><style>{STYLE}</style></head>\n<body>\n{body}\n"
            "</body></html>\n")
