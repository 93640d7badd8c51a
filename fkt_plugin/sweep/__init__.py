"""Comparison sweeps (``fkt-compare``): every (arm, label fraction, seed) as its own run, then
one table.

An arm trains a recipe and is scored either by its own classifier (``supervised``,
``fkt_joint``) or by an evaluation protocol of the trained backbone (``simclr`` → linear probe or
fine-tuning). A self-supervised backbone never sees a label, so one pre-training run per seed
serves every label fraction. Finished runs and evaluations are read back instead of redone, so an
interrupted sweep resumes where it stopped and a finished one reruns in seconds.

:mod:`.plan` (jobs, run names, each run's cfg, file locations), :mod:`.execute` (locks, running
jobs, the local multi-process scheduler), :mod:`.report` (tables and paired differences from the
rows alone), :mod:`.plots` (the pictures).
"""

from fkt_plugin.sweep.execute import HELPER_ENV, Busy, claim, run_job, run_sweep, start_helpers
from fkt_plugin.sweep.plan import Job, Sweep
from fkt_plugin.sweep.plots import draw
from fkt_plugin.sweep.report import recorded_command, write_report

__all__ = ["HELPER_ENV", "Busy", "Job", "Sweep", "claim", "draw", "recorded_command", "run_job",
           "run_sweep", "start_helpers", "write_report"]
