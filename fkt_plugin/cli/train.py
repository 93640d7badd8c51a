"""``fkt-train``: train one method from a recipe (hydra; solo-learn's recipe schema)."""

from __future__ import annotations

import json

import hydra
from omegaconf import DictConfig

from fkt_plugin.args.schemas import RunSchema
from fkt_plugin.backbones import BACKBONES
from fkt_plugin.cli.errors import user_errors_exit
from fkt_plugin.cli.hydra_app import main_with_help
from fkt_plugin.data import DATASETS
from fkt_plugin.methods import METHODS
from fkt_plugin.recipes import PRETRAIN_RECIPES

HELP = f"""\
fkt-train: train a method from a recipe and test the model selected on validation.

usage:
  fkt-train --config-path recipes/pretrain/fashion_mnist --config-name fkt_joint [KEY=VALUE ...]

Overrides use hydra's syntax, for example:
  method=simclr             swap the method (its method_kwargs defaults are filled in)
  data.label_fraction=0.1   keep labels for 10% of each class (the rest get target -1)
  max_epochs=20 optimizer.lr=0.1 backbone.name=resnet18 +backbone.kwargs.small_stem=true
  name=my-run checkpoint.dir=trained_models
  data.pseudo_labels=clusters.npz    train on fkt-cluster's cluster ids (k classes)
  data.augmentation_backend=torchvision data.num_workers=8
                            views per image in loader workers instead of the view engine on
                            the device (data.augmentation_backend=kornia: kornia's containers)
  precision=bf16-mixed performance.compile=true
  devices=4 strategy=ddp sync_batchnorm=true   several GPUs (README: multi-GPU, SLURM)

Outputs go to <checkpoint.dir>/<name>/: config.yaml, metrics.csv, checkpoints/{{last,best}}.ckpt,
results.json. Rerunning the same command resumes an interrupted run from last.ckpt.
Add --cfg job to print the composed recipe without training.

methods:   {", ".join(sorted(METHODS))}
datasets:  {", ".join(sorted(DATASETS))}
backbones: {", ".join(sorted(BACKBONES))}
"""


@hydra.main(version_base="1.3", config_path=None, config_name=None)
def _run(cfg: DictConfig) -> None:
    from fkt_plugin.runner import train

    with user_errors_exit():
        results = train(cfg)
    print(json.dumps({"run": results["name"], "val": results["val"], "test": results["test"]},
                     indent=2))


def main() -> None:
    """Entry point of ``fkt-train``."""
    main_with_help(HELP, _run, schema=RunSchema, recipes=(
        "fkt-train --config-path recipes/pretrain/<dataset> --config-name <recipe> [KEY=VALUE ...]",
        PRETRAIN_RECIPES))


if __name__ == "__main__":
    main()
