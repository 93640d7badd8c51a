"""A sweep's pre-registration: ``<out>/declaration.json``, written when the sweep first starts.

It holds the design — every arm with its recipe file (path and sha256 of its text) and
overrides, the fractions, seeds, pairs, ``selection``, ``val_labels`` and evaluation settings —
its sha256, the time and the project's commit. A later start with another design is refused,
naming what changed, unless ``amend="<reason>"`` is given: the amendment (what changed, the
reason, the time, how many runs had finished and whether any test number had been written then)
is appended and the amended design becomes the one enforced. Every training run the sweep makes
records the sha of the design it ran under in its ``results.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from fkt_plugin.config import plain_dict
from fkt_plugin.errors import ConfigError
from fkt_plugin.run_dir import RunDirectory
from fkt_plugin.sweep.plan import Sweep


def declaration_file(out: Path) -> Path:
    """Where a sweep's declaration is: ``<out>/declaration.json``."""
    return out / "declaration.json"


DESIGN_KEYS = ("fractions", "seeds", "paired", "selection", "val_labels", "overrides", "eval")
"""The compare settings that make the design (with the arms); ``out``, ``processes``,
``launcher``, ``summary_only`` and ``embedding`` change how it runs or is drawn, not what it
measures."""


def design_of(sweep: Sweep) -> dict[str, Any]:
    """The design a sweep's cfg declares, as plain JSON values."""
    cfg = plain_dict(sweep.cfg)
    arms = []
    for arm, declared in zip(sweep.cfg.arms, cfg["arms"], strict=True):
        recipe = sweep.recipe_file(arm)
        # Relative to the working directory, normalised: the same file however the recipe
        # folder was reached (an absolute --config-path, or a study's relative one), and no
        # machine path in a committed declaration.
        arms.append({**declared, "recipe_file": os.path.relpath(recipe.resolve()),
                     "recipe_sha256": hashlib.sha256(recipe.read_bytes()).hexdigest()})
    # As JSON holds it (mapping keys such as label fractions become strings), so that a design
    # compares equal to the one read back from declaration.json.
    design: dict[str, Any] = json.loads(json.dumps(
        {"arms": arms, **{key: cfg[key] for key in DESIGN_KEYS}}))
    return design


def sha_of(design: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(design, sort_keys=True).encode()).hexdigest()


def _commit() -> str | None:
    """The project's commit, when it runs from a git checkout."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def _changes(before: Any, after: Any, key: str = "") -> list[str]:
    """Dotted keys whose values differ, ``key: old -> new``."""
    if isinstance(before, dict) and isinstance(after, dict):
        return [change for k in sorted(before.keys() | after.keys())
                for change in _changes(before.get(k), after.get(k), f"{key}.{k}" if key else k)]
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [change for i, (b, a) in enumerate(zip(before, after, strict=True))
                for change in _changes(b, a, f"{key}[{i}]")]
    return [] if before == after else [f"{key}: {json.dumps(before)} -> {json.dumps(after)}"]


def _progress(sweep: Sweep) -> tuple[int, bool]:
    """How many training runs have finished, and whether any test number has been written."""
    finished = {sweep.run_dir(job) for job in sweep.jobs
                if sweep.folder(job).results_file.is_file()}
    tested = bool(finished) or any(sweep.finished(job) for job in sweep.jobs)
    return len(finished), tested


def declare(sweep: Sweep, amend: str | None = None) -> dict[str, Any]:
    """Writes the declaration at a sweep's first start, or checks the design against it.

    Returns:
        The declaration as it stands (``sha256`` is the design now enforced).

    Raises:
        ConfigError: The design differs from the declared one and no ``amend`` reason is given.
    """
    path = declaration_file(sweep.out)
    design = design_of(sweep)
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if not path.is_file():
        finished, tested = _progress(sweep)
        declaration: dict[str, Any] = {
            "declared": now, "commit": _commit(), "design": design, "sha256": sha_of(design),
            "runs_finished_when_declared": finished,
            "test_numbers_written_when_declared": tested, "amendments": []}
        sweep.out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(declaration, indent=2, ensure_ascii=False) + "\n")
        return declaration
    declaration = json.loads(path.read_text())
    changes = _changes(declaration["design"], design)
    if not changes:
        return declaration
    if amend is None:
        raise ConfigError(
            f"this sweep's design differs from the one declared in {path} on "
            f"{declaration['declared']} ({'; '.join(changes[:6])}"
            f"{'; ...' if len(changes) > 6 else ''}): give it another out=, or record the change "
            "as an amendment with amend=\"<reason>\"")
    finished, tested = _progress(sweep)
    declaration["amendments"].append({
        "time": now, "reason": amend, "changes": changes, "commit": _commit(),
        "runs_finished": finished, "test_numbers_written": tested,
        "sha256_before": declaration["sha256"], "sha256": sha_of(design)})
    declaration["design"], declaration["sha256"] = design, sha_of(design)
    path.write_text(json.dumps(declaration, indent=2, ensure_ascii=False) + "\n")
    return declaration


def stamp(out: Path, folder: RunDirectory) -> None:
    """Records in a run's results.json the sha of the design it was made under, where the sweep
    in ``out`` has a declaration."""
    path = declaration_file(out)
    if path.is_file() and folder.results_file.is_file():
        results = folder.read_results()
        results.declaration = json.loads(path.read_text())["sha256"]
        folder.write_results(results)


def declaration_lines(out: Path) -> list[str]:
    """The report's opening lines: when the design was declared, and its amendments."""
    path = declaration_file(out)
    if not path.is_file():
        return []
    declaration = json.loads(path.read_text())
    amendments = declaration["amendments"]
    head = (f"Declared {declaration['declared']} (design sha {declaration['sha256'][:12]}"
            f"{', commit ' + declaration['commit'][:10] if declaration.get('commit') else ''}"
            f"); {len(amendments)} amendment{'s' if len(amendments) != 1 else ''}.")
    if declaration.get("runs_finished_when_declared"):
        head += (f" Declared when {declaration['runs_finished_when_declared']} runs had "
                 "already finished.")
    return [head] + [
        f"- Amended {a['time']}: {a['reason']} ({len(a['changes'])} changes, "
        f"{a['runs_finished']} runs finished, test numbers "
        f"{'already' if a['test_numbers_written'] else 'not yet'} written): "
        + "; ".join(a["changes"]) for a in amendments]
