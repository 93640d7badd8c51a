"""A sweep on a cluster: its work as SLURM jobs submitted through submitit (``launcher=slurm``).

The work is cut into units, each one run of the code a local sweep runs (no second
implementation): a training run (:func:`~fkt_plugin.sweep.execute.ensure_trained`), a clustering
(:func:`~fkt_plugin.sweep.execute.cluster_for`), a job's evaluation and read-back
(:func:`~fkt_plugin.sweep.execute.run_job`). Units fall in layers by what they need: training
runs that need nothing (pre-trainings, teachers, own-classifier runs), clusterings of teachers,
students, then the jobs' evaluations. Each layer is one job array (117 jobs are four
submissions), and each array starts after the one before it has ended (SLURM's ``afterany`` on
the array: a failed task does not stop the sweep; a unit whose input is missing trains it itself,
as a local sweep does). One dependency per layer rather than per unit keeps the submission to a
few ``sbatch`` calls; a layer waits for the slowest unit of the one before.

Finished work is skipped when the plan is made, so the same command resumes a sweep; a task that
SLURM preempts or times out is requeued by submitit and resumes from its ``last.ckpt``.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fkt_plugin.errors import FKTError, MissingDependencyError
from fkt_plugin.runner import train
from fkt_plugin.sweep.execute import cluster_for, ensure_trained, run_job, use_allotted_cores
from fkt_plugin.sweep.plan import Job, Sweep, print_now

LAYERS = ("training runs", "clusterings", "students", "evaluations")


@dataclass(frozen=True)
class Unit:
    """One task: ``kind`` (train, cluster, job) of the sweep's job at ``index``."""

    kind: str
    index: int
    name: str


@dataclass(frozen=True)
class SweepSpec:
    """What a task needs to rebuild the sweep: the compare cfg, the folder its relative recipe
    paths start from, and the working directory its relative ``out`` starts from."""

    cfg: dict[str, Any]
    base_dir: str
    cwd: str

    def sweep(self) -> Sweep:
        os.chdir(self.cwd)
        return Sweep(OmegaConf.create(self.cfg), base_dir=self.base_dir)


def run_unit(spec: SweepSpec, unit: Unit, rank: int = 0, own_process: bool = False) -> str:
    """Runs one unit in a task (what submitit pickles and calls).

    Args:
        spec: The sweep.
        unit: The unit.
        rank: The task's rank among the tasks of a multi-GPU training run (one per GPU, as
            Lightning reads them from SLURM): rank 0 claims the run, the others join it.
        own_process: The task is a process of its own (a SLURM or local task, not the debug
            executor's call in the submitting process): it takes ``launcher.cpus_per_job``
            torch threads (:func:`use_allotted_cores`).
    """
    sweep = spec.sweep()
    if own_process:
        threads = use_allotted_cores(sweep.cfg.launcher.cpus_per_job)
        print_now(f"{unit.kind} {unit.name}: {threads} torch thread(s) "
                  f"(launcher.cpus_per_job={sweep.cfg.launcher.cpus_per_job})")
    job = sweep.jobs[unit.index]
    if unit.kind == "train" and rank > 0:
        train(sweep.run_cfg(job))
    elif unit.kind == "train":
        ensure_trained(sweep, job)
    elif unit.kind == "cluster":
        cluster_for(sweep, job)
    else:
        run_job(sweep, job)
    return unit.name


class UnitTask:
    """:func:`run_unit` as submitit's checkpointable callable: a task preempted or timed out is
    resubmitted with the same unit, and the run resumes from its ``last.ckpt``."""

    def __call__(self, spec: SweepSpec, unit: Unit) -> str:
        import submitit

        try:
            rank = submitit.JobEnvironment().global_rank
        except RuntimeError:  # not inside a submitit job (the debug executor: this process)
            return run_unit(spec, unit)
        return run_unit(spec, unit, rank, own_process=True)

    def checkpoint(self, spec: SweepSpec, unit: Unit) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(self, spec, unit)


def plan_units(sweep: Sweep) -> list[list[Unit]]:
    """The unfinished units of a sweep, by layer (:data:`LAYERS`); empty layers stay empty."""
    layers: list[list[Unit]] = [[] for _ in LAYERS]
    seen: set[tuple[str, str]] = set()

    def add(layer: int, kind: str, job: Job, name: str) -> None:
        if (kind, name) not in seen:
            seen.add((kind, name))
            layers[layer].append(Unit(kind, sweep.jobs.index(job), name))

    for job in sweep.jobs:
        if sweep.finished(job):
            continue
        if job.arm.teacher is not None:
            teacher = sweep.teacher_job(job)
            if not sweep.folder(teacher).trained():
                add(0, "train", teacher, sweep.run_name(teacher))
            if job.arm.k is not None and not sweep.pseudo_label_file(job).is_file():
                add(1, "cluster", job, sweep.pseudo_label_file(job).stem)
        if not sweep.folder(job).trained():
            add(2 if job.arm.teacher is not None else 0, "train", job, sweep.run_name(job))
        if job.arm.protocol is not None:
            add(3, "job", job, f"{job.arm.name} {job.fraction:g} seed {job.seed}")
    return layers


def gpu_hours(sweep: Sweep, layers: list[list[Unit]]) -> str:
    """The estimate printed before submitting: training units × seconds per run × GPUs."""
    launcher = sweep.cfg.launcher
    trainings = sum(unit.kind == "train" for layer in layers for unit in layer)
    seconds = launcher.seconds_per_job
    source = "launcher.seconds_per_job"
    if seconds is None:
        # Each run once (a shared pre-training serves several jobs).
        folders = {sweep.run_dir(job): sweep.folder(job) for job in sweep.jobs}.values()
        measured = [folder.read_results().fit_seconds for folder in folders
                    if folder.results_file.is_file()]
        if not any(measured):
            return (f"{trainings} training runs; no finished run says how long one takes: set "
                    "launcher.seconds_per_job=<seconds> for a GPU-hours estimate")
        seconds = statistics.median(s for s in measured if s)
        source = "the median of the finished runs' training seconds"
    hours = trainings * seconds * max(1, launcher.gpus_per_job) / 3600
    return (f"{trainings} training runs x {seconds:.0f} s ({source}) x "
            f"{max(1, launcher.gpus_per_job)} GPU = about {hours:.2f} GPU-hours")


def _executor(sweep: Sweep, folder: Path, dependency: str | None, training: bool) -> Any:
    try:
        import submitit
    except ImportError:
        raise MissingDependencyError("launcher=slurm needs submitit: pip install submitit (or "
                                     "fkt-plugin[cluster])") from None
    launcher = sweep.cfg.launcher
    try:
        executor = submitit.AutoExecutor(folder=folder, cluster=launcher.cluster)
    except RuntimeError as err:  # submitit's "Could not detect srun"
        raise MissingDependencyError(
            f"launcher=slurm submits with SLURM's sbatch, which this machine lacks ({err}): run "
            "the command on the cluster's login node, or see the plan with "
            "launcher.dry_run=true, or run the jobs here with launcher.cluster=local") from None
    executor.update_parameters(**executor_parameters(launcher, dependency, training))
    return executor


def executor_parameters(launcher: DictConfig, dependency: str | None,
                        training: bool) -> dict[str, Any]:
    """submitit's parameters for the launcher block (the ``slurm_`` ones apply on SLURM only).

    A training layer gets ``gpus_per_job`` GPUs and a task per GPU (Lightning's SLURM
    environment: the recipe's ``devices=N strategy=ddp``); the other layers one GPU at most.
    """
    gpus = launcher.gpus_per_job if training else min(1, launcher.gpus_per_job)
    slurm = {"slurm_partition": launcher.partition, "slurm_account": launcher.account,
             "slurm_qos": launcher.qos, "slurm_constraint": launcher.constraint,
             "slurm_dependency": dependency}
    return {"name": "fkt-compare", "timeout_min": launcher.timeout_min,
            "gpus_per_node": gpus, "tasks_per_node": max(1, gpus),
            "cpus_per_task": launcher.cpus_per_job,
            "mem_gb": launcher.mem_gb, "slurm_array_parallelism": launcher.max_parallel,
            "slurm_additional_parameters": dict(launcher.additional),
            **{k: v for k, v in slurm.items() if v is not None}}


def launch(sweep: Sweep, spec: SweepSpec,
           log: Callable[[str], None] = print_now) -> bool:
    """Submits the sweep's unfinished units, layer by layer.

    Returns:
        Whether every unit has finished here (the report can be written now): true when the
        launcher waits (``launcher.wait``, or a cluster that runs on this machine).

    Raises:
        FKTError: A unit failed (the message names its log), with waiting.
    """
    launcher = sweep.cfg.launcher
    folder = Path(launcher.folder) if launcher.folder else sweep.out / "slurm"
    layers = plan_units(sweep)
    counts = ", ".join(f"{len(layer)} {name}"
                       for layer, name in zip(layers, LAYERS, strict=True) if layer)
    log(f"{sum(map(len, layers))} units to run in {sum(map(bool, layers))} layers ({counts}); "
        + gpu_hours(sweep, layers))
    if launcher.dry_run:
        write_dry_run(sweep, layers, folder, log)
        return False
    waits = launcher.wait or launcher.cluster != "slurm"
    previous: str | None = None
    for layer, name in zip(layers, LAYERS, strict=True):
        if not layer:
            continue
        # Off SLURM there are no dependencies: each layer ends before the next is submitted.
        executor = _executor(sweep, folder, f"afterany:{previous}" if previous else None,
                             training=layer[0].kind == "train")
        with executor.batch():
            jobs = [executor.submit(UnitTask(), spec, unit) for unit in layer]
        array = str(jobs[0].job_id).split("_")[0]
        log(f"{name}: {len(jobs)} tasks submitted (job {array})"
            + (f", after job {previous}" if previous else ""))
        if launcher.cluster == "slurm":
            previous = array
        if waits:
            _wait(jobs, layer)
    if not waits:
        log(f"submitted; follow them with squeue -u $USER, their logs under {folder}/; when "
            "they have ended, write the report with summary_only=true (the same command resumes "
            "what did not finish)")
    return waits


def _wait(jobs: list[Any], units: list[Unit]) -> None:
    failed = []
    for job, unit in zip(jobs, units, strict=True):
        error = job.exception()
        if error is not None:
            # submitit's FailedJobError carries the task's traceback: its last line says why.
            lines = [line for line in str(error).splitlines() if line.strip()]
            why = lines[-1].strip() if lines else type(error).__name__
            failed.append(f"{unit.kind} {unit.name}: {why} (log: {job.paths.stderr})")
    if failed:
        raise FKTError(f"{len(failed)} of {len(jobs)} tasks failed: {'; '.join(failed)}; the "
                       "same command resumes the sweep")


def _no_srun_executor_class() -> type:
    from submitit.slurm.slurm import SlurmExecutor

    class NoSrunSlurmExecutor(SlurmExecutor):
        """submitit's SLURM executor on a machine without SLURM: it writes, never submits."""

        @classmethod
        def affinity(cls) -> int:
            return 1

    return NoSrunSlurmExecutor


def write_dry_run(sweep: Sweep, layers: list[list[Unit]], folder: Path,
                  log: Callable[[str], None]) -> list[Path]:
    """Writes the sbatch script submitit would submit for each layer's array under
    ``<folder>/dry_run/`` and submits nothing (no SLURM needed)."""
    out = folder / "dry_run"
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for i, (layer, name) in enumerate(zip(layers, LAYERS, strict=True)):
        if not layer:
            continue
        # The job id sbatch gives the array of the layer before (unknown until submitted).
        depends = f"afterany:<job id of {written[-1].stem}>" if written else None
        executor = _no_srun_executor_class()(folder=folder)
        # As AutoExecutor hands them on: generic names converted, slurm_ keys unprefixed.
        executor.update_parameters(**executor._convert_parameters({
            k.removeprefix("slurm_"): v
            for k, v in executor_parameters(sweep.cfg.launcher, depends,
                                            training=layer[0].kind == "train").items()}))
        executor.parameters["map_count"] = len(layer)  # as submitit submits an array
        script = out / f"layer{i}-{name.replace(' ', '_')}.sh"
        script.write_text(executor._make_submission_file_text(executor._submitit_command_str,
                                                              "dry-run"))
        (script.with_suffix(".units")).write_text("\n".join(u.name for u in layer) + "\n")
        written.append(script)
        log(f"{name}: an array of {len(layer)} tasks -> {script}")
    return written
