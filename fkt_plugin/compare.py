"""A comparison sweep: every (arm, label fraction, seed) as its own run, then one table.

An arm trains a recipe and is scored either by its own classifier (``supervised``,
``fkt_joint``) or by an evaluation protocol of the trained backbone (``simclr`` → linear probe or
fine-tuning). A self-supervised backbone never sees a label, so one pre-training run per seed
serves every label fraction. Finished runs and evaluations are read back instead of redone, so an
interrupted sweep resumes where it stopped and a finished one reruns in seconds.

Several processes may run one sweep at once (a GPU that one small run leaves mostly idle, a
many-core machine): each job, each shared training run and each clustering is claimed by one
process through a lock file; the others take other jobs, then read the claimed ones back.

Files under ``<out>/``::

    runs/                   one run directory per training run (see :mod:`fkt_plugin.runner`)
    locks/                  the lock files of claimed work (held only while a process works)
    logs/                   the output of processes 2..N of ``processes=N``
    results.csv             every (arm, fraction, seed): test metrics and where they came from
    results.md              mean ± std per arm and fraction (accuracy, macro F1[, kappa])
    accuracy_vs_fraction.png, training_curves.png, pretraining_knn.png, embedding.png
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from fkt_plugin.args.compare import seeds_for, validate_compare_cfg
from fkt_plugin.args.run import validate_run_cfg
from fkt_plugin.checkpoints import checkpoint_path
from fkt_plugin.config import epochs_for, mapping_copy
from fkt_plugin.errors import CheckpointError, ConfigError, MissingPathError
from fkt_plugin.evaluation.convergence import RISE_MARGIN
from fkt_plugin.evaluation.plots import (
    plot_accuracy_vs_fraction,
    plot_embeddings,
    plot_training_curves,
)
from fkt_plugin.evaluation.protocols import (
    evaluate_run,
    fraction_tag,
    frozen_features,
    subsample,
)
from fkt_plugin.methods import METHODS
from fkt_plugin.recipes import apply_value_overrides, compose_recipe
from fkt_plugin.runner import train
from fkt_plugin.statistics import paired_difference, reading
from fkt_plugin.tables import write_rows
from fkt_plugin.transfer import cluster

BOLD_MIN_SEEDS = 3
"""A column's best mean is bolded only where its cell has at least this many seeds."""


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-").lower()


def _print_now(line: str) -> None:
    print(line, flush=True)


class Busy(Exception):
    """Work a job needs is claimed by another process of the same sweep."""


@contextmanager
def claim(lock_file: Path) -> Iterator[None]:
    """Holds ``lock_file`` (an exclusive ``flock``) while the block runs.

    The operating system releases the lock when its process ends, so a killed process leaves
    nothing claimed.

    Raises:
        Busy: Another process holds it.
    """
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(lock_file.stem) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Job:
    """One cell of the sweep: an arm at a label fraction and a seed."""

    arm: DictConfig
    fraction: float
    seed: int


class Sweep:
    """The runs of a validated compare cfg and where each one's results live.

    Args:
        cfg: A compare cfg (:data:`fkt_plugin.args.compare.COMPARE_DEFAULTS`), validated here.
        base_dir: Folder that relative ``recipes`` and ``out`` paths start from.
        log: Where notices go.
    """

    def __init__(self, cfg: DictConfig, base_dir: str | Path = ".",
                 log: Callable[[str], None] = _print_now) -> None:
        self.cfg = validate_compare_cfg(cfg)
        self.log = log
        base = Path(base_dir)
        recipes = Path(self.cfg.recipes)
        self.recipes = recipes if recipes.is_absolute() else base / recipes
        self.out = Path(self.cfg.out)
        if not self.recipes.is_dir():
            raise MissingPathError(f"recipes={self.recipes} is not a folder of training recipes")
        self._run_cfgs: dict[tuple[str, float, int], DictConfig] = {}
        self._arm_cfgs: dict[str, DictConfig] = {}
        first_seeds = dict.fromkeys(s for f in self.cfg.fractions
                                    for s in seeds_for(self.cfg, float(f)))
        self.jobs = [Job(arm, float(f), s) for s in first_seeds
                     for f in self.cfg.fractions for arm in self.cfg.arms
                     if (arm.fractions is None or f in arm.fractions)
                     and s in seeds_for(self.cfg, float(f))]
        self.first_seed = next(iter(first_seeds))
        # Composing every run's cfg up front catches a bad recipe or override before hours of
        # training, not in the middle.
        for job in self.jobs:
            validate_run_cfg(self.run_cfg(job))

    def _compose(self, arm: DictConfig, overrides: list[str]) -> DictConfig:
        """The arm's recipe with the sweep's and the arm's overrides, then a job's
        ``key=value`` overrides."""
        return apply_value_overrides(self._arm_base(arm), overrides)

    def _arm_base(self, arm: DictConfig) -> DictConfig:
        """The arm's recipe with the sweep's and the arm's overrides, composed once per arm
        (shared: callers copy before changing it)."""
        name = str(arm.name)
        if name not in self._arm_cfgs:
            recipe = str(arm.recipe).removesuffix(".yaml")
            if not (self.recipes / f"{recipe}.yaml").is_file():
                known = sorted(p.stem for p in self.recipes.glob("*.yaml"))
                raise ConfigError(f"arm {arm.name!r}: no recipe {recipe!r} in {self.recipes}; "
                                  f"known: {', '.join(known)}")
            self._arm_cfgs[name] = compose_recipe(self.recipes / f"{recipe}.yaml",
                                                  [*self.cfg.overrides, *arm.overrides])
        return self._arm_cfgs[name]

    def run_cfg(self, job: Job) -> DictConfig:
        """The training run behind a job: the arm's own run, or its shared pre-training."""
        key = (str(job.arm.name), job.fraction, job.seed)
        if key not in self._run_cfgs:
            self._run_cfgs[key] = self._make_run_cfg(job)
        return self._run_cfgs[key].copy()

    def _make_run_cfg(self, job: Job) -> DictConfig:
        arm = job.arm
        if arm.steps is None:
            epochs = epochs_for(arm.epochs, job.fraction, f"arm {arm.name!r} epochs")
            length, length_tag = [f"max_epochs={epochs}"], f"e{epochs}"
        else:
            steps = epochs_for(arm.steps, job.fraction, f"arm {arm.name!r} steps")
            length, length_tag = [f"++max_steps={steps}"], f"s{steps}"
        base = self._arm_base(arm)
        # A student learns from its teacher's cluster ids only: no real label, like SSL.
        label_free = arm.protocol is not None and (
            arm.teacher is not None or not METHODS[base.method].supervised_grad)
        fraction = 1.0 if label_free else job.fraction
        extra: list[str] = []
        if arm.protocol is None:
            name = f"{_slug(arm.name)}-{fraction_tag(fraction)}-seed{job.seed}"
        else:
            # Shared by every arm and fraction that pre-trains the same way.
            key = json.dumps([list(self.cfg.overrides), list(arm.overrides)])
            digest = hashlib.sha1(key.encode()).hexdigest()[:6]
            tag = "" if label_free else f"-{fraction_tag(fraction)}"
            name = f"{_slug(str(arm.recipe))}-{length_tag}{tag}-seed{job.seed}-{digest}"
        # Paths as given (relative to the working directory, like out): a committed sweep
        # resumes from another checkout.
        if arm.teacher is not None and arm.k is None:
            teacher_dir = self.run_dir(self.teacher_job(job))
            name = f"{name}-student-of-{teacher_dir.name}"
            extra.append(f"method_kwargs.teacher.run_dir={teacher_dir}")
        elif arm.teacher is not None:
            labels = self.pseudo_label_file(job)
            name = f"{name}-student-of-{labels.stem}"
            extra.append(f"++data.pseudo_labels={labels}")
        for key, value in (("data.val_labels", self.cfg.val_labels),
                           ("selection", self.cfg.selection)):
            if value is not None:
                extra.append(f"++{key}={value}")
        return self._compose(arm, [
            f"data.label_fraction={fraction}", f"seed={job.seed}", f"data.split_seed={job.seed}",
            *length, f"checkpoint.dir={self.out / 'runs'}",
            f"++name={name}", *extra,
        ])

    def teacher_job(self, job: Job) -> Job:
        """The job whose run is a student job's teacher (same seed and fraction)."""
        teacher = next(arm for arm in self.cfg.arms if arm.name == job.arm.teacher)
        return Job(teacher, job.fraction, job.seed)

    def pseudo_label_file(self, job: Job) -> Path:
        """Where a student job's cluster ids are: one file per teacher run, k and settings."""
        settings = json.dumps({str(k): v for k, v in job.arm.cluster.items()}, sort_keys=True)
        digest = hashlib.sha1(settings.encode()).hexdigest()[:6]
        teacher = self.run_cfg(self.teacher_job(job)).name
        return self.out / "clusters" / f"{teacher}-k{job.arm.k}-{digest}.npz"

    def run_dir(self, job: Job) -> Path:
        return self.out / "runs" / self.run_cfg(job).name

    def eval_file(self, job: Job) -> Path:
        """Where a job's test metrics are read from."""
        if job.arm.protocol is None:
            return self.run_dir(job) / "results.json"
        return self.run_dir(job) / "eval" / f"{job.arm.protocol}-{fraction_tag(job.fraction)}.json"

    def finished(self, job: Job) -> bool:
        return self.eval_file(job).is_file()

    def check_read_back(self, job: Job) -> None:
        """Refuses a finished job whose run was made under another ``selection`` or
        ``val_labels`` than the sweep asks for (these are not in the run names, so that sweeps
        from before they existed resume; runs that do not record them are accepted).

        Raises:
            ConfigError: The recorded setting differs.
        """
        results_file = self.run_dir(job) / "results.json"
        if not results_file.is_file():
            return
        results = json.loads(results_file.read_text())
        recorded = {"selection": results.get("selection"),
                    "val_labels": (results.get("labels") or {}).get("val_labels")}
        for key, was in recorded.items():
            wanted = self.cfg[key]
            if wanted is not None and was is not None and was != wanted:
                raise ConfigError(
                    f"{results_file.parent.name} under {self.out} was run with {key}={was}, "
                    f"this sweep asks for {key}={wanted}; give the sweep another out= (runs of "
                    f"different {key} are not mixed in one table)")

    def lock_file(self, kind: str, name: str) -> Path:
        """The lock file by which one process claims a piece of the sweep's work."""
        return self.out / "locks" / f"{kind}-{name}.lock"

    def run(self, job: Job, on_start: Callable[[], None] | None = None) -> dict[str, Any]:
        """Trains and evaluates what is missing for one job; its results file's content.

        Args:
            job: The job.
            on_start: Called once this process holds the job and it is not finished.

        Raises:
            Busy: Another process holds the job or a run it needs; nothing was changed.
        """
        job_name = f"{_slug(str(job.arm.name))}-{fraction_tag(job.fraction)}-seed{job.seed}"
        with claim(self.lock_file("job", job_name)):
            if not self.finished(job):  # another process may have finished it meanwhile
                if on_start is not None:
                    on_start()
                self._run_claimed(job)
        return json.loads(self.eval_file(job).read_text())

    def _run_claimed(self, job: Job) -> None:
        run_dir = self.run_dir(job)
        if job.arm.teacher is not None and job.arm.k is None:
            self._ensure_trained(self.teacher_job(job))
        elif job.arm.teacher is not None:
            self._cluster_for(job)
        self._ensure_trained(job)
        if job.arm.protocol is not None and not self.finished(job):
            settings = mapping_copy(self.cfg.eval, "eval")
            with open_dict(settings):
                settings.run_dir = str(run_dir)
                settings.protocols = [job.arm.protocol]
                settings.label_fraction = job.fraction
                settings.plots.embedding = False
            evaluate_run(settings)

    def _cluster_for(self, job: Job) -> None:
        """Trains the teacher and clusters its features, unless done before."""
        labels = self.pseudo_label_file(job)
        if labels.is_file():
            return
        teacher_job = self.teacher_job(job)
        self._ensure_trained(teacher_job)
        with claim(self.lock_file("clusters", labels.stem)):
            if labels.is_file():
                return
            cluster(OmegaConf.create({
                "run_dir": str(self.run_dir(teacher_job)), "k": int(job.arm.k),
                "out": str(labels), "seed": job.seed,
                **{str(k): v for k, v in job.arm.cluster.items()}}))

    def _ensure_trained(self, job: Job) -> None:
        """Trains a job's run unless its results and last checkpoint are here.

        A sweep's small result files can be kept (committed) without its checkpoints; a job
        that still needs a pre-trained network whose checkpoint is not on this machine (a study
        resumed elsewhere) trains it again, with the same seed and settings.
        """
        run_dir = self.run_dir(job)
        if self._trained_here(run_dir):
            return
        with claim(self.lock_file("run", run_dir.name)):
            if self._trained_here(run_dir):
                return
            if (run_dir / "results.json").is_file():
                self.log(f"{run_dir.name}: results read back but no checkpoint here; training "
                         "it again (same seed and settings) for the jobs that still need it")
                (run_dir / "results.json").unlink()
            train(self.run_cfg(job))

    @staticmethod
    def _trained_here(run_dir: Path) -> bool:
        return (run_dir / "results.json").is_file() and (
            run_dir / "checkpoints" / "last.ckpt").is_file()

    def classifier_run(self, job: Job) -> tuple[Path, str] | None:
        """The run directory and checkpoint of the model a job's test metrics come from
        (None for frozen-feature protocols: their backbone is the pre-training's)."""
        if job.arm.protocol is None:
            return self.run_dir(job), "best.ckpt"
        if job.arm.protocol == "finetune":
            tuned = json.loads(self.eval_file(job).read_text())["finetune_run"]
            return self.out / "runs" / tuned, "best.ckpt"
        return None


def run_sweep(sweep: Sweep, train_missing: bool = True,
              log: Callable[[str], None] = _print_now, poll_seconds: float = 10.0,
              ) -> list[dict[str, Any]]:
    """Runs (or reads back) every job; one row per job whose results exist.

    A job that another process of the same sweep holds (or a run it needs) is put off: the
    other jobs go first, then this process waits for it and reads its results back.

    Args:
        sweep: The sweep.
        train_missing: False: only read back finished jobs (a summary of a sweep in progress).
        log: Where progress lines go.
        poll_seconds: How long to wait before trying put-off jobs again when none could start.
    """
    pending: list[tuple[str, Job]] = []
    for i, job in enumerate(sweep.jobs, 1):
        place = f"[{i}/{len(sweep.jobs)}] {_label(job)}"
        if sweep.finished(job):
            sweep.check_read_back(job)
            log(f"{place}: finished earlier, read back")
        elif train_missing:
            pending.append((place, job))
    todo = len(pending)
    started = time.time()
    waiting: set[Job] = set()
    announced: set[Job] = set()
    while pending:
        progressed = False
        for place, job in list(pending):
            if sweep.finished(job):
                log(f"{place}: finished by another process, read back")
            else:
                # Counted over the whole sweep, so that the estimate holds for the work of all
                # its processes, not only this one's.
                done = todo - sum(not sweep.finished(other) for _, other in pending)
                elapsed = time.time() - started
                eta = (f", about {elapsed / done * (todo - done) / 60:.0f} min left"
                       if done else "")
                start_line = (f"{place}: running ({done}/{todo} to do done, "
                              f"{elapsed / 60:.0f} min so far{eta})")
                try:
                    sweep.run(job, on_start=partial(_announce_once, log, start_line,
                                                    announced, job))
                except Busy as busy:
                    if job not in waiting:
                        waiting.add(job)
                        log(f"{place}: {busy} is claimed by another process; other jobs first")
                    continue
                if job in waiting:
                    log(f"{place}: done after waiting")
            pending.remove((place, job))
            progressed = True
        if pending and not progressed:
            time.sleep(poll_seconds)
    rows = []
    for job in sweep.jobs:
        if not sweep.finished(job):
            continue
        results = json.loads(sweep.eval_file(job).read_text())
        labels = results.get("labels") or {}
        rows.append({"arm": job.arm.name, "label_fraction": job.fraction, "seed": job.seed,
                     **results["test"], "run": str(sweep.run_dir(job).name),
                     "source": sweep.eval_file(job).name,
                     **{f"labels_{k}": labels[k] for k in ("train", "val", "total")
                        if k in labels},
                     # Trained runs only (a frozen-feature probe has no validation curve).
                     **({"val_still_rising": results["val_still_rising"] is not None}
                        if "val_still_rising" in results else {})})
    return rows


def _announce_once(log: Callable[[str], None], line: str, announced: set[Job], job: Job) -> None:
    """Logs that a job runs the first time it starts (a put-off job may start several times
    before a run it needs is free)."""
    if job not in announced:
        announced.add(job)
        log(line)


def _label(job: Job) -> str:
    return f"{job.arm.name}, {100 * job.fraction:g}% labels, seed {job.seed}"


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
                fractions: list[float], metric: str) -> list[dict[str, Any]]:
    """One row per pair and fraction: the mean of ``a − b`` (in %) over the seeds both arms
    finished, its 95% t-interval and n."""
    out = []
    for a, b in pairs:
        for fraction in fractions:
            difference = paired_difference(_by_seed(rows, a, fraction, metric),
                                           _by_seed(rows, b, fraction, metric))
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


def write_report(sweep: Sweep, rows: list[dict[str, Any]], command: str = "",
                 plots: bool = True) -> str:
    """Writes results.csv, results.md and the plots under ``<out>``; returns the markdown."""
    out, cfg = sweep.out, sweep.cfg
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
    parts = [f"Mean ± std over seeds ({seeds}; n = finished runs per cell); "
             f"best mean per column in bold where n >= {BOLD_MIN_SEEDS}. {epochs}."]
    if command:
        parts.append(f"Command: `{command}`")
    for key, title in metrics:
        summary = summarise(rows, arms, fractions, key)
        parts.append(f"### {title}\n\n{markdown_table(summary, fractions)}")
        if plots and key == "acc1" and summary:
            plot_accuracy_vs_fraction({a: {f: c[:2] for f, c in cells.items()}
                                       for a, cells in summary.items()},
                                      out / "accuracy_vs_fraction.png")
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
        sentences = [reading(a, b, f"at {100 * f:g}% labels", d)
                     for a, b in pairs for f in fractions
                     if (d := paired_difference(_by_seed(rows, a, f, "acc1"),
                                                _by_seed(rows, b, f, "acc1"))) is not None]
        parts.append("### Reading (from the paired differences alone)\n\n"
                     + "\n".join(f"- {s}" for s in sentences))
    report = "\n\n".join(parts) + "\n"
    (out / "results.md").write_text(report)
    if plots:
        _plot_curves(sweep)
        _plot_pretraining_knn(sweep)
        _plot_embedding(sweep)
    return report


def _epochs_text(epochs: Any) -> str:
    if isinstance(epochs, DictConfig):
        return ", ".join(f"{v} at {100 * float(str(f)):g}%" for f, v in epochs.items())
    return str(epochs)


def _plot_curves(sweep: Sweep) -> None:
    seed = sweep.first_seed
    curves: dict[str, dict[str, Path]] = {}
    for job in sweep.jobs:
        found = sweep.classifier_run(job) if job.seed == seed and sweep.finished(job) else None
        if found and (found[0] / "metrics.csv").is_file():
            group = f"{100 * job.fraction:g}% labels, seed {seed}"
            curves.setdefault(group, {})[job.arm.name] = found[0] / "metrics.csv"
    if curves:
        plot_training_curves(curves, "val_acc1", sweep.out / "training_curves.png")


def _plot_pretraining_knn(sweep: Sweep) -> None:
    """The online kNN accuracy of each shared pre-training (first seed) against optimiser
    steps: is it still rising when pre-training stops?"""
    lines: dict[str, Path] = {}
    for job in sweep.jobs:
        if job.arm.protocol is None or job.seed != sweep.first_seed:
            continue
        metrics = sweep.run_dir(job) / "metrics.csv"
        if metrics.is_file():
            lines.setdefault(str(sweep.run_cfg(job).name), metrics)
    if lines:
        plot_training_curves({f"pre-training, seed {sweep.first_seed}": lines}, "val_knn_acc1",
                             sweep.out / "pretraining_knn.png")


def _plot_embedding(sweep: Sweep) -> None:
    emb = sweep.cfg.embedding
    fraction = float(emb.fraction if emb.fraction is not None else min(sweep.cfg.fractions))
    seed = int(emb.seed) if emb.seed is not None else sweep.first_seed
    jobs = [job for job in sweep.jobs
            if job.fraction == fraction and job.seed == seed and sweep.finished(job)]
    picture = sweep.out / "embedding.png"
    # t-SNE takes minutes on a CPU: redraw only when a result behind the picture is newer.
    if picture.is_file() and all(sweep.eval_file(job).stat().st_mtime < picture.stat().st_mtime
                                 for job in jobs):
        return
    panels: dict[str, tuple[Any, Any]] = {}
    cache: dict[tuple[Path, str], Any] = {}
    missing: list[str] = []
    for job in jobs:
        run_dir, checkpoint = sweep.classifier_run(job) or (
            sweep.run_dir(job), sweep.cfg.eval.checkpoint)
        # A sweep resumed from its committed result files has no checkpoints: the arms whose
        # network is not on this machine are left out of the picture, not the whole report.
        try:
            checkpoint_path(run_dir, checkpoint)
        except CheckpointError:
            missing.append(str(job.arm.name))
            continue
        if (run_dir, checkpoint) not in cache:
            cache[run_dir, checkpoint] = frozen_features(run_dir, checkpoint, splits=("test",))
        feats = cache[run_dir, checkpoint]
        test_x, test_y = feats.test
        panels[job.arm.name] = subsample(test_x, test_y, emb.samples)
        class_names = feats.dataset.class_names
    if missing:
        sweep.log(f"embedding.png: {', '.join(missing)} left out (checkpoint not on this "
                  "machine; rerun with the checkpoints to draw them)")
    if panels:
        plot_embeddings(panels, class_names, picture)
