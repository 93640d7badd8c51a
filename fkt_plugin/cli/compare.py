"""``fkt-compare``: the comparison table (arms × label fractions × seeds) as one command."""

from __future__ import annotations

import os
import sys

import hydra
from omegaconf import DictConfig

from fkt_plugin.args.schemas import CompareSchema
from fkt_plugin.cli.errors import user_errors_exit
from fkt_plugin.cli.hydra_app import main_with_help, recipe_folder, typed_arguments
from fkt_plugin.config import mapping_copy, plain_dict
from fkt_plugin.errors import ConfigError, FKTError, MissingPathError
from fkt_plugin.recipes import PRETRAIN_RECIPES

HELP = """\
fkt-compare: train and evaluate every arm of a comparison at every label fraction and seed, and
write the table.

usage:
  fkt-compare --config-path recipes/compare --config-name fashion_mnist_study [KEY=VALUE ...]

A compare recipe declares:
  recipes     folder of the arms' training recipes (relative to the compare recipe)
  arms        list of {name, recipe, epochs, protocol, overrides}: protocol null scores the run's
              own classifier (supervised, fkt_joint); linear, mlp, knn or finetune evaluate the
              trained backbone (a self-supervised pre-training is shared by all fractions)
              an arm with teacher: <arm>, k: <int> (and cluster: {pca_dim, restarts, ...}) is a
              student: the teacher arm's backbone is clustered by fkt-cluster and the arm's
              recipe trains on the cluster ids, then its protocol scores it on the real labels;
              with teacher: <arm> and no k, the teacher arm's run directory is the recipe's
              method_kwargs.teacher.run_dir (MV-MR distillation, recipe mvmr_distill)
  fractions   label fractions in (0, 1], e.g. [0.01,0.1,1.0]
  seeds       e.g. [0,1,2]; each seed also draws its own validation split and labelled subset
  overrides   hydra overrides for every training run, e.g. [backbone.name=resnet18]
  eval        settings of the protocols (see fkt-eval --help)
  out         output folder (default compare_runs)
  paired      pairs of arm names [[a, b], ...]: mean of a − b over shared seeds with its 95%
              t-interval, in results.md and results.csv
  val_labels  budget | extra | none for every run (data.val_labels: validation labels inside
              the label fraction, on top of it, or no validation); null: each recipe's own
  selection   best_val | last for every run (the epoch scored); null: each recipe's own
  embedding   {fraction, seed, samples} of the t-SNE figure (null: the smallest fraction, the
              first seed)

  launcher    local (this machine; the default) or slurm: launcher=slurm launcher.partition=gpu
              submits the sweep's runs as SLURM job arrays through submitit, one array per
              layer of dependencies (training runs, clusterings, students, evaluations), each
              after the one before; launcher.{gpus_per_job, cpus_per_job, mem_gb,
              timeout_min, max_parallel, account, qos, constraint, additional} set the jobs,
              launcher.folder their logs (default <out>/slurm), launcher.wait=true waits and
              writes the report, launcher.dry_run=true writes the sbatch scripts under
              <folder>/dry_run and submits nothing, launcher.cluster=local runs the same jobs
              as processes of this machine; launcher.seconds_per_job feeds the GPU-hours
              estimate printed first

  amend       the reason for changing a declared design: the first start of a sweep declares
              its design in <out>/declaration.json (arms with their recipe files' sha256,
              fractions, seeds, pairs, selection, val_labels, overrides, eval); a later start
              with another design is refused unless amend="<reason>" records the change (with
              how many runs had finished); results.md opens with the declaration and its
              amendments, and every run's results.json records the design's sha

Every run has its own directory under <out>/runs; finished runs are read back, so an interrupted
sweep resumes where it stopped (also in another checkout that has only the runs' result files:
a pre-training that an unfinished job still needs is trained again). summary_only=true trains
nothing and summarises what is finished (the report keeps quoting the command that made it).

processes=N shares the sweep between N processes, e.g. on a GPU that one small run leaves
mostly idle, or on a many-core machine (each gets cores/N threads unless OMP_NUM_THREADS is set;
the output of processes 2..N goes to <out>/logs/process-<i>.log):
  fkt-compare --config-path recipes/compare --config-name demo processes=2
Processes started by hand on the same recipe and machine cooperate the same way. Each job,
shared pre-training and clustering is claimed by one process (a lock file under <out>/locks,
freed when its process ends, also when it is killed); the others take other jobs, then wait for
the claimed ones and read them back; one writes the report. Each job's start line counts
the jobs the whole sweep has finished since the process started and the time left at that pace.

Writes <out>/results.csv, <out>/results.md (mean ± std per arm and fraction, bold only where
n >= 3; the labels each run used; how many trained runs ended with their validation accuracy
still rising; the paired differences and a plain reading of them),
accuracy_vs_fraction.png, training_curves.png (validation accuracy against optimiser steps),
pretraining_knn.png (each pre-training's kNN accuracy: still rising?) and embedding.png (t-SNE of
test features per arm).
"""


@hydra.main(version_base="1.3", config_path=None, config_name=None)
def _run(cfg: DictConfig) -> None:
    from fkt_plugin.sweep import (
        HELPER_ENV,
        Busy,
        Sweep,
        claim,
        draw,
        recorded_command,
        run_sweep,
        start_helpers,
        write_report,
    )
    from fkt_plugin.sweep.declaration import declare
    from fkt_plugin.sweep.launch import SweepSpec, launch

    with user_errors_exit():
        if not cfg:
            raise ConfigError("no compare recipe given: use --config-path recipes/compare "
                              "--config-name <name> (see fkt-compare --help)")
        sweep = Sweep(mapping_copy(cfg), base_dir=recipe_folder())
        if not sweep.cfg.summary_only:
            declare(sweep, sweep.cfg.amend)
        on_cluster = sweep.cfg.launcher.name == "slurm" and not sweep.cfg.summary_only
        if on_cluster and not launch(sweep, SweepSpec(
                plain_dict(cfg), str(recipe_folder()), os.getcwd())):
            return  # submitted: the jobs run on; summary_only=true writes the report
        count = 1 if sweep.cfg.summary_only or on_cluster else int(sweep.cfg.processes)
        helpers = start_helpers(sweep.out / "logs", count)
        try:
            rows = run_sweep(sweep, train_missing=not (sweep.cfg.summary_only or on_cluster))
        except BaseException:
            for helper, _ in helpers:
                helper.terminate()
            raise
        statuses = [(i, helper.wait(), log) for i, (helper, log) in enumerate(helpers, 2)]
        if not rows:
            raise MissingPathError(f"no finished runs under {sweep.out}")
        if os.environ.get(HELPER_ENV) == "1":
            print("process 1 of this sweep writes the report", flush=True)
            return
        command = "fkt-compare " + " ".join(typed_arguments() or sys.argv[1:])
        if sweep.cfg.summary_only:  # a rebuilt report quotes the command that made the runs
            command = recorded_command(sweep.out) or command
        # Processes that finish one sweep together would each redraw the same pictures (a t-SNE
        # takes minutes) and could interleave their writes: one writes, the others leave it.
        try:
            with claim(sweep.lock_file("report", "report")):
                print(write_report(sweep.cfg, sweep.out, rows, command=command))
                draw(sweep, rows)
        except Busy:
            print(f"another process of this sweep is writing the report under {sweep.out}; "
                  "its files are complete when that process ends")
        failed = [(i, status, log) for i, status, log in statuses if status != 0]
        if failed:
            raise FKTError("; ".join(f"process {i} of {count} ended with exit status {status} "
                                     f"(its output: {log})" for i, status, log in failed))


def main() -> None:
    """Entry point of ``fkt-compare``."""
    main_with_help(HELP, _run, schema=CompareSchema, recipes=(
        "fkt-compare --config-path recipes/compare --config-name <recipe> [KEY=VALUE ...]",
        PRETRAIN_RECIPES.parent / "compare"))


if __name__ == "__main__":
    main()
