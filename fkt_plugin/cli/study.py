"""``fkt-study``: which method should I use on my images, at my label budget?"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from fkt_plugin.args.schemas import StudySchema
from fkt_plugin.cli.errors import user_errors_exit
from fkt_plugin.cli.hydra_app import main_with_help, recipe_folder
from fkt_plugin.recipes import PRETRAIN_RECIPES

STUDY_TEMPLATES = PRETRAIN_RECIPES.parent / "study"
# The arguments as typed (the template's folder, added when none is named, is this machine's).
_COMMAND: list[str] = []

HELP = """\
fkt-study: which training method gives the best classifier on your images at your label budget,
and how sure that is.

usage:
  fkt-study data.dataset=folder data.train_path=path/to/images data.image_size=96 budget.minutes=60
  fkt-study data.dataset=fashion_mnist budget.fractions=[0.01] budget.minutes=100

The dataset is named as any training recipe names it: folder (path/to/images/<class>/<image>,
with data.unlabelled_path=<folder of unlabelled images> and data.val_path=<test folder> if you
have them; else data.holdout_fraction of each class is the test split), fashion_mnist, cifar10,
stl10, intel, aptos. The budget is budget.minutes (wall time of this machine) or
budget.gpu_hours; budget.fractions=[1.0,0.1] adds smaller simulated label budgets.

What it does:
  1. looks at the data (classes, labelled and unlabelled counts, image size) and refuses a
     class with too few labels for a validation split inside the budget (it says how many),
     picks the recipe family (the dataset's own, else 32 / 96 / 224 px by data.image_size) and
     the backbone (small_cnn without a GPU, ResNet-18 with one; backbone=cpu|gpu to choose);
  2. a pilot trains every arm a few steps on a seed outside the study (seed 100), timing each,
     and plans the longest matched schedule that 3 seeds fit in the budget (more seeds with
     what is left, up to 5), printing arms, steps, seeds and the estimated time; the plan is
     declared in <out>/declaration.json before the first run;
  3. runs the arms (fkt_joint, its ssl_weight=0 ablation, supervised, SimCLR -> linear and ->
     fine-tune, BYOL -> fine-tune) with fkt-compare's machinery: validation labels inside the
     budget, the last step scored; launcher=slurm submits them to a cluster, processes=N
     shares them between N processes; the same command resumes an interrupted study;
  4. writes <out>/report.md and a self-contained <out>/report.html opening with the
     recommendation, derived from the paired intervals alone: the best method where its
     interval against every other excludes 0, else the methods that cannot be told apart and
     the cheapest of them; then the table, the paired differences, labels used, runs still
     rising, cost per method and what would sharpen the answer;
  5. retrains the recommended method on every label (deliver.validation=true keeps the
     validation split) and exports its backbone to <out>/model/backbone.pt and
     backbone.safetensors, with its test accuracy.

Keys (recipes/study/default.yaml is the template; --config-path/--config-name use another):
  out             the study's folder (default studies/<dataset>[-<folder name>])
  arms            the methods compared (the template's six)
  backbone        auto | cpu | gpu (the family's backbone without / with a GPU)
  overrides       hydra overrides of every training run, e.g. [optimizer.batch_size=128]
  schedule        min_steps, max_steps (bounds of the matched schedule), min_seeds (>= 3),
                  max_seeds, validations per run, min_labels_per_class
  pilot           steps, seed
  deliver         enabled, validation
  processes, launcher, amend   as in fkt-compare --help (the pilot always runs on this
                  machine: with launcher=slurm, start fkt-study on a node like the jobs')
"""


@hydra.main(version_base="1.3", config_path=None, config_name=None)
def _run(cfg: DictConfig) -> None:
    from fkt_plugin.args.study import validate_study_cfg
    from fkt_plugin.study import run_study

    with user_errors_exit():
        study = validate_study_cfg(cfg)
        run_study(study, recipe_folder(), " ".join(["fkt-study", *_COMMAND]))


def main() -> None:
    """Entry point of ``fkt-study``."""
    argv = sys.argv[1:]
    _COMMAND[:] = argv
    if not any(a in ("--config-name", "-cn") or a.startswith(("--config-name=", "-cn="))
               for a in argv):
        sys.argv = [sys.argv[0], "--config-path", str(STUDY_TEMPLATES), "--config-name",
                    "default", *argv]
    main_with_help(HELP, _run, schema=StudySchema)


if __name__ == "__main__":
    main()
