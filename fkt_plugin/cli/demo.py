"""``fkt-demo``: supervised vs SimCLR → linear probe vs fkt_joint, as one comparison table.

Every (arm, label fraction, seed) is its own run directory under ``<out>/runs``; a finished run is
read back rather than retrained, so an interrupted comparison resumes where it stopped.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir

from fkt_plugin.cli.errors import user_errors_exit

DEFAULT_RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "pretrain" / "fashion_mnist"


@dataclass(frozen=True)
class Arm:
    """One column of the comparison: a recipe, its epochs, and whether a linear probe follows."""

    label: str
    recipe: str
    epochs: int
    linear_probe: bool = False


def run_arm(arm: Arm, recipes: Path, fraction: float, seed: int, out: Path,
            extra: list[str], train_missing: bool = True) -> dict[str, Any] | None:
    """Trains (or reads back) one run of ``arm``; its test metrics, or None if not trained."""
    from fkt_plugin.runner import linear_probe, run_dir_of, train

    overrides = [f"data.label_fraction={fraction}", f"seed={seed}", f"data.split_seed={seed}",
                 f"max_epochs={arm.epochs}", f"checkpoint.dir={out / 'runs'}",
                 f"++name={arm.recipe}-labels{fraction:g}-seed{seed}", *extra]
    with initialize_config_dir(config_dir=str(recipes.resolve()), version_base="1.3"):
        cfg = compose(config_name=arm.recipe, overrides=overrides)
    run_dir = run_dir_of(cfg)
    results_file = run_dir / ("linear_probe.json" if arm.linear_probe else "results.json")
    if results_file.exists() and (run_dir / "results.json").exists():
        return json.loads(results_file.read_text())["test"]
    if not train_missing:
        return None
    train(cfg)
    return (linear_probe(run_dir) if arm.linear_probe
            else json.loads((run_dir / "results.json").read_text()))["test"]


def summarise(rows: list[dict[str, Any]], arms: list[Arm], fractions: list[float]) -> str:
    """A markdown table of mean ± std test accuracy (%) per arm and label fraction."""
    header = "| arm | " + " | ".join(f"{f:g} labels" for f in fractions) + " |"
    lines = [header, "|---" * (len(fractions) + 1) + "|"]
    for arm in arms:
        cells = []
        for fraction in fractions:
            accs = [100 * r["acc1"] for r in rows
                    if r["arm"] == arm.label and r["label_fraction"] == fraction]
            std = statistics.stdev(accs) if len(accs) > 1 else 0.0
            cells.append(f"{statistics.mean(accs):.2f} ± {std:.2f} (n={len(accs)})"
                         if accs else "-")
        lines.append(f"| {arm.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``fkt-demo``."""
    parser = argparse.ArgumentParser(
        prog="fkt-demo",
        description="Train supervised, fkt_joint and simclr (+ linear probe) on the same labelled "
                    "subsets and print a table of test accuracy (mean ± std over seeds). Writes "
                    "<out>/results.csv and <out>/results.md; finished runs are reused.",
    )
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1],
                        help="label fractions (default: 0.1)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="seeds; each also draws its own labelled subset (default: 0)")
    parser.add_argument("--ssl-epochs", type=int, default=2,
                        help="epochs of fkt_joint and simclr (default: 2)")
    parser.add_argument("--supervised-epochs", type=int, default=20,
                        help="epochs of the supervised baseline, which sees only the labelled "
                             "images and so takes far less time per epoch (default: 20)")
    parser.add_argument("--recipes", type=Path, default=DEFAULT_RECIPES,
                        help=f"recipe folder (default: {DEFAULT_RECIPES})")
    parser.add_argument("--out", type=Path, default=Path("demo_runs"),
                        help="output folder (default: demo_runs)")
    parser.add_argument("--no-train", action="store_true",
                        help="only summarise the runs already finished under --out")
    parser.add_argument("overrides", nargs="*",
                        help="hydra overrides applied to every run, e.g. backbone.name=resnet18")
    args = parser.parse_args(argv)
    arms = [Arm("supervised", "supervised", args.supervised_epochs),
            Arm("simclr → linear", "simclr", args.ssl_epochs, linear_probe=True),
            Arm("fkt_joint", "fkt_joint", args.ssl_epochs)]
    # Seeds outermost, so that a comparison stopped early has every fraction at equal depth.
    jobs = [(arm, f, s) for s in args.seeds for f in args.fractions for arm in arms]
    rows: list[dict[str, Any]] = []
    started = time.time()
    with user_errors_exit():
        for i, (arm, fraction, seed) in enumerate(jobs, 1):
            print(f"[{i}/{len(jobs)}] {arm.label}, {fraction:g} labels, seed {seed} "
                  f"({time.time() - started:.0f} s so far)", flush=True)
            test = run_arm(arm, args.recipes, fraction, seed, args.out, args.overrides,
                           train_missing=not args.no_train)
            if test is None:
                continue
            rows.append({"arm": arm.label, "label_fraction": fraction, "seed": seed, **test})
    if not rows:
        raise SystemExit(f"error: no finished runs under {args.out}")
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    table = summarise(rows, arms, args.fractions)
    epochs = (f"fkt_joint and simclr {args.ssl_epochs} epochs, supervised "
              f"{args.supervised_epochs} epochs")
    report = f"Test accuracy (%), mean ± std over seeds {args.seeds}; {epochs}.\n\n{table}\n"
    (args.out / "results.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
