"""``fkt-eval``: evaluation protocols of a finished run (hydra)."""

from __future__ import annotations

import json

import hydra
from omegaconf import DictConfig

from fkt_plugin.args.schemas import EvalSchema
from fkt_plugin.cli.errors import user_errors_exit
from fkt_plugin.cli.hydra_app import main_with_help, store_tool_config
from fkt_plugin.evaluation.protocol_registry import PROTOCOLS

HELP = f"""\
fkt-eval: evaluate the backbone of a finished fkt-train run.

usage:
  fkt-eval run_dir=trained_models/simclr-fashion_mnist-labels1-seed5 [KEY=VALUE ...]

protocols (protocols=[linear,knn] by default; any of {", ".join(PROTOCOLS)}):
  linear    softmax on frozen standardised features, full-batch L-BFGS, L2 chosen on val
            (linear.weight_decays, linear.max_iter)
  mlp       two-layer MLP on frozen features, AdamW + cosine, best epoch on val
            (mlp.hidden_dim, mlp.epochs, mlp.lr, mlp.weight_decay, mlp.batch_size)
  knn       weighted kNN on frozen features (knn.k, knn.temperature)
  finetune  the whole network trained from the checkpoint as a supervised run
            (finetune.max_epochs, finetune.lr, finetune.weight_decay, finetune.augmentations)

other keys:
  checkpoint=last.ckpt   checkpoint under run_dir/checkpoints (or a path): last = end of
                         pre-training, best = best val_acc1 of the run's own classifier
  label_fraction=0.01    labelled share of each class to train the probe on (default: the run's)
  recipe=r.yaml          for a checkpoint from elsewhere (solo-learn, torchvision state dict):
                         the training recipe of its backbone and data; with checkpoint=<file>,
                         run_dir is then where the results go; recipe_overrides=[k=v,...]
  plots.confusion_matrix=true plots.embedding=true plots.embedding_samples=2000
                         the pictures (false: none; fewer samples: a faster t-SNE)

Each protocol selects its model on the validation split and scores the test split once; results go
to run_dir/eval/<protocol>-labels<fraction>.json with a confusion-matrix picture and a t-SNE plot
of the test features (UMAP where installed). Fine-tuning writes a sibling run directory.
"""

store_tool_config("fkt_eval", "fkt_eval_schema")


@hydra.main(version_base="1.3", config_path=None, config_name="fkt_eval")
def _run(cfg: DictConfig) -> None:
    from fkt_plugin.evaluation.protocols import evaluate_run

    with user_errors_exit():
        results = evaluate_run(cfg)
    print(json.dumps({p: {"test": r["test"], "val": r.get("val")} for p, r in results.items()},
                     indent=2))


def main() -> None:
    """Entry point of ``fkt-eval``."""
    main_with_help(HELP, _run, schema=EvalSchema)


if __name__ == "__main__":
    main()
