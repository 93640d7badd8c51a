"""A study's delivery: the recommended method retrained on every label of the study's largest
fraction (no validation split unless ``deliver.validation``), exported with fkt-export's
format (plain state dict + safetensors), with its test metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fkt_plugin.checkpoints import export_backbone
from fkt_plugin.config import mapping_copy
from fkt_plugin.run_dir import RunDirectory
from fkt_plugin.sweep import Sweep, run_sweep


def deliver(recipe: dict[str, Any], out: Path) -> list[str]:
    """Trains the one-arm, one-seed ``recipe`` (a compare recipe whose ``out`` is
    ``<study>/model``), exports its backbone, and returns the report's lines on it.

    Args:
        recipe: The delivery's compare recipe (:func:`fkt_plugin.study.plan.compare_recipe`).
        out: The study's folder (relative recipe folders start there).
    """
    sweep = Sweep(mapping_copy(recipe), base_dir=out)
    (row,) = run_sweep(sweep)
    job = sweep.jobs[0]
    run_dir, _ = sweep.classifier_run(job) or (sweep.run_dir(job), "last.ckpt")
    folder = RunDirectory(run_dir)
    selected = folder.read_results().selected_checkpoint or "last.ckpt"
    checkpoint = folder.checkpoint(Path(selected).name)
    files = export_backbone(checkpoint, sweep.out / "backbone.pt")
    labels = (f"{row['labels_train']:,} training + {row['labels_val']:,} validation labels"
              if "labels_total" in row else "its labels")
    lines = [
        f"{job.arm.name} retrained on {labels} (seed {job.seed}, "
        f"{recipe['arms'][0]['steps']} steps, the last step kept): test accuracy "
        f"{100 * row['acc1']:.2f}%, macro F1 {100 * row['f1_macro']:.2f}%.",
        "Backbone: " + ", ".join(f"`{path}`" for path in files) + " (fkt-export's format: "
        "ResNets keep torchvision's key names); the whole network: "
        f"`{checkpoint}`."]
    if job.arm.protocol in ("linear", "mlp", "knn"):
        lines.append(f"The {job.arm.protocol} probe on the frozen backbone is refitted by "
                     f"fkt-eval (its scores are in `{sweep.eval_file(job)}`).")
    return lines
