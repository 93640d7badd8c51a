"""Running a sweep: claiming work by lock files, training and evaluating what each job misses,
and the local scheduler that shares the jobs between processes.

Several processes may run one sweep at once (a GPU that one small run leaves mostly idle, a
many-core machine): each job, each shared training run and each clustering is claimed by one
process through a lock file (:mod:`fkt_plugin.locks`); the others take other jobs, then read
the claimed ones back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf, open_dict

from fkt_plugin.config import mapping_copy
from fkt_plugin.evaluation.protocols import evaluate_run
from fkt_plugin.locks import Held, hold
from fkt_plugin.run_dir import fraction_tag
from fkt_plugin.runner import train
from fkt_plugin.sweep.declaration import stamp
from fkt_plugin.sweep.plan import Job, Sweep, print_now, slug
from fkt_plugin.transfer import cluster

HELPER_ENV = "FKT_COMPARE_HELPER"
"""Set to 1 in the processes that ``processes=N`` starts: they leave the report to the first."""


class Busy(Exception):
    """Work a job needs is claimed by another process of the same sweep."""


@contextmanager
def claim(lock_file: Path) -> Iterator[None]:
    """Holds ``lock_file`` while the block runs (freed when its process ends, also if killed).

    Raises:
        Busy: Another process holds it.
    """
    try:
        with hold(lock_file, lock_file.stem):
            yield
    except Held:
        raise Busy(lock_file.stem) from None


def run_job(sweep: Sweep, job: Job,
            on_start: Callable[[], None] | None = None) -> dict[str, Any]:
    """Trains and evaluates what is missing for one job; its results file's content.

    Args:
        sweep: The sweep.
        job: The job.
        on_start: Called once this process holds the job and it is not finished.

    Raises:
        Busy: Another process holds the job or a run it needs; nothing was changed.
    """
    job_name = f"{slug(str(job.arm.name))}-{fraction_tag(job.fraction)}-seed{job.seed}"
    with claim(sweep.lock_file("job", job_name)):
        if not sweep.finished(job):  # another process may have finished it meanwhile
            if on_start is not None:
                on_start()
            _run_claimed(sweep, job)
    return json.loads(sweep.eval_file(job).read_text())


def _run_claimed(sweep: Sweep, job: Job) -> None:
    run_dir = sweep.run_dir(job)
    if job.arm.teacher is not None and job.arm.k is None:
        ensure_trained(sweep, sweep.teacher_job(job))
    elif job.arm.teacher is not None:
        cluster_for(sweep, job)
    ensure_trained(sweep, job)
    if job.arm.protocol is not None and not sweep.finished(job):
        settings = mapping_copy(sweep.cfg.eval, "eval")
        with open_dict(settings):
            settings.run_dir = str(run_dir)
            settings.protocols = [job.arm.protocol]
            settings.label_fraction = job.fraction
            settings.plots.embedding = False
        evaluate_run(settings)


def cluster_for(sweep: Sweep, job: Job) -> None:
    """Trains the teacher and clusters its features, unless done before."""
    labels = sweep.pseudo_label_file(job)
    if labels.is_file():
        return
    teacher_job = sweep.teacher_job(job)
    ensure_trained(sweep, teacher_job)
    with claim(sweep.lock_file("clusters", labels.stem)):
        if labels.is_file():
            return
        cluster(OmegaConf.create({
            "run_dir": str(sweep.run_dir(teacher_job)), "k": int(job.arm.k),
            "out": str(labels), "seed": job.seed,
            **{str(k): v for k, v in job.arm.cluster.items()}}))


def ensure_trained(sweep: Sweep, job: Job) -> None:
    """Trains a job's run unless its results and last checkpoint are here.

    A sweep's small result files can be kept (committed) without its checkpoints; a job
    that still needs a pre-trained network whose checkpoint is not on this machine (a study
    resumed elsewhere) trains it again, with the same seed and settings.
    """
    folder = sweep.folder(job)
    if folder.trained():
        return
    with claim(sweep.lock_file("run", folder.name)):
        if folder.trained():
            return
        if folder.results_file.is_file():
            sweep.log(f"{folder.name}: results read back but no checkpoint here; training "
                      "it again (same seed and settings) for the jobs that still need it")
            folder.results_file.unlink()
        train(sweep.run_cfg(job))
        stamp(sweep.out, folder)


def run_sweep(sweep: Sweep, train_missing: bool = True,
              log: Callable[[str], None] = print_now, poll_seconds: float = 10.0,
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
                    run_job(sweep, job, on_start=partial(_announce_once, log, start_line,
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


def use_allotted_cores(cpus: int) -> int:
    """Gives this process's torch ``cpus`` threads, at most the machine's cores
    (``OMP_NUM_THREADS`` where it is set), and returns the count.

    Processes that share a machine (a sweep's ``processes=N``, the tasks submitit's local
    executor starts at once, tasks on a SLURM node that does not pin them to their cores) would
    each take torch's default, a thread per core of the machine, and fight over the cores, each
    several times slower than on its share.
    """
    import torch

    threads = int(os.environ.get("OMP_NUM_THREADS") or min(cpus, os.cpu_count() or cpus))
    torch.set_num_threads(threads)
    return threads


def start_helpers(logs: Path, count: int, args: list[str] | None = None,
                  ) -> list[tuple[subprocess.Popen[bytes], Path]]:
    """Starts ``count - 1`` more fkt-compare processes (they claim jobs as this one does), each
    with its share of the cores unless OMP_NUM_THREADS is set.

    Args:
        logs: Where their output goes.
        count: Processes in all, this one included.
        args: fkt-compare's arguments (default: this process's command line).
    """
    if count == 1:
        return []
    threads = str(use_allotted_cores(max(1, (os.cpu_count() or 1) // count)))
    # The command line as this process got it, the recipe folder made absolute: the helpers
    # run in the same working directory.
    if args is None:
        args = [arg for arg in sys.argv[1:] if not arg.lstrip("+").startswith("processes=")]
    logs.mkdir(parents=True, exist_ok=True)
    helpers = []
    for i in range(2, count + 1):
        log = logs / f"process-{i}.log"
        with log.open("wb") as output:
            helpers.append((subprocess.Popen(
                [sys.executable, "-m", "fkt_plugin.cli.compare", *args, "processes=1"],
                stdout=output, stderr=subprocess.STDOUT,
                env={**os.environ, "OMP_NUM_THREADS": threads, HELPER_ENV: "1"}), log))
    print(f"{count} processes share the sweep; the output of the others goes to {logs}/",
          flush=True)
    return helpers
