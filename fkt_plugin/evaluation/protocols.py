"""Evaluation protocols of a finished run: linear probe, MLP probe and kNN on frozen features,
and full fine-tuning. Each selects its model on the validation split and scores the test split
once, for the selected model.

Files written under the run directory (``<tag>`` = ``labels<fraction>``)::

    eval/<protocol>-<tag>.json             metrics, selection details, confusion matrix
    eval/<protocol>-<tag>-confusion.png
    eval/embedding-test.png                t-SNE (UMAP where installed) of test features

Fine-tuning trains a sibling run ``<name>-finetune-<tag>`` (a ``supervised`` run initialised
from the checkpoint) with its own checkpoints and ``results.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, open_dict

from fkt_plugin.args.evaluation import validate_eval_cfg
from fkt_plugin.args.run import validate_run_cfg
from fkt_plugin.checkpoints import BackboneSource, on_best_device
from fkt_plugin.config import resolve_per_fraction
from fkt_plugin.data import FKTDataModule, ImageDataset
from fkt_plugin.errors import CheckpointError, ConfigError, MissingPathError
from fkt_plugin.evaluation.features import extract_features
from fkt_plugin.evaluation.metrics import classification_metrics, confusion
from fkt_plugin.evaluation.plots import plot_confusion_matrix, plot_embeddings
from fkt_plugin.evaluation.protocol_registry import PROTOCOLS, FrozenFeatures
from fkt_plugin.evaluation.result_json import result_json
from fkt_plugin.recipes import compose_recipe
from fkt_plugin.run_dir import RunDirectory, fraction_tag
from fkt_plugin.runner import prepare, train


def frozen_features(run_dir: str | Path, checkpoint: str, label_fraction: float | None = None,
                    splits: tuple[str, ...] = ("train", "val", "test")) -> FrozenFeatures:
    """Loads a run's backbone from ``checkpoint`` and extracts the features of its splits.

    Args:
        run_dir: The run directory (its ``config.yaml`` gives backbone, dataset and splits).
        checkpoint: A checkpoint name under ``checkpoints/`` or a path.
        label_fraction: Labelled share of the training pool (default: the run's own).
        splits: Which splits to extract; the others are left empty.
    """
    source = BackboneSource(run_dir=str(run_dir), checkpoint=checkpoint)
    cfg = RunDirectory(run_dir).load_config()
    if label_fraction is not None:
        with open_dict(cfg):
            cfg.data.label_fraction = label_fraction
    cfg, dataset, datamodule = prepare(cfg)
    backbone = on_best_device(source.build(dataset.num_channels, cfg))
    return _features_of(backbone, datamodule, dataset, splits)


def _features_of(backbone: torch.nn.Module, datamodule: FKTDataModule, dataset: ImageDataset,
                 wanted: tuple[str, ...]) -> FrozenFeatures:
    transform = datamodule.eval_transform
    splits = {"train": datamodule.labelled_train, "val": datamodule.val,
              "test": datamodule.test}
    empty = (torch.empty(0), torch.empty(0, dtype=torch.int64))
    feats = {name: (extract_features(backbone, split, transform, desc=f"{name} features"),
                    split.targets) if name in wanted else empty
             for name, split in splits.items()}
    return FrozenFeatures(**feats, dataset=dataset, labels=datamodule.labels)


def finetune(run_dir: str | Path, checkpoint: str, label_fraction: float,
             settings: DictConfig) -> dict[str, Any]:
    """Fine-tunes the whole network from a run's checkpoint as a sibling ``supervised`` run.

    Returns:
        The fine-tuning run's ``results.json`` content (model selected on validation).
    """
    folder = RunDirectory(run_dir)
    cfg = folder.load_config()
    path = folder.checkpoint(checkpoint)
    augmentations = settings.augmentations
    if augmentations is None:
        crop = int(cfg.augmentations[0].crop_size)
        augmentations = [{"rrc": {"enabled": True, "crop_min_scale": 0.5},
                          "horizontal_flip": {"prob": 0.5}, "crop_size": crop, "num_crops": 1}]
    with open_dict(cfg):
        cfg.name = folder.finetune_name(label_fraction)
        cfg.method = "supervised"
        cfg.method_kwargs = {}
        cfg.pretrained_feature_extractor = str(path)  # as given: relative stays relative
        cfg.data.label_fraction = label_fraction
        cfg.max_epochs = resolve_per_fraction(settings.max_epochs, label_fraction,
                                              "finetune.max_epochs")
        cfg.optimizer.lr = settings.lr
        cfg.optimizer.weight_decay = settings.weight_decay
        cfg.scheduler.warmup_epochs = settings.warmup_epochs
        cfg.val_every_n_steps = settings.val_every_n_steps
        cfg.augmentations = augmentations
    return train(cfg)


def adopt_recipe(run_dir: Path, recipe: str | Path, checkpoint: str,
                 overrides: list[str] | None = None) -> None:
    """Gives a checkpoint trained elsewhere (solo-learn, torchvision) a run directory: the
    training recipe that describes its backbone and data becomes ``run_dir/config.yaml``.

    Raises:
        FileNotFoundError: The recipe or the checkpoint file does not exist.
        ConfigError: The recipe is invalid, or ``run_dir`` holds a run with another config.
    """
    recipe = Path(recipe)
    if not recipe.is_file():
        raise MissingPathError(f"recipe={recipe} does not exist")
    if not Path(checkpoint).is_file():
        raise CheckpointError(f"with recipe=, checkpoint must be a file path; {checkpoint} "
                                "does not exist")
    cfg = compose_recipe(recipe, [*(overrides or []), f"++name={run_dir.name}",
                                  f"checkpoint.dir={run_dir.resolve().parent}"])
    RunDirectory(run_dir).save_config(validate_run_cfg(cfg))


def evaluate_run(eval_cfg: DictConfig) -> dict[str, dict[str, Any]]:
    """Runs the protocols of an evaluation cfg (:data:`fkt_plugin.args.evaluation.EVAL_DEFAULTS`).

    Returns:
        Protocol name → what was written to its ``eval/<protocol>-<tag>.json``.
    """
    eval_cfg = validate_eval_cfg(eval_cfg)
    if eval_cfg.run_dir is None:
        raise ConfigError("run_dir is not set: give run_dir=<checkpoint.dir>/<name>")
    run_dir = Path(eval_cfg.run_dir)
    if eval_cfg.recipe is not None:
        adopt_recipe(run_dir, eval_cfg.recipe, eval_cfg.checkpoint,
                     list(eval_cfg.recipe_overrides))
    folder = RunDirectory(run_dir)
    run_cfg = folder.load_config()
    fraction = eval_cfg.label_fraction or run_cfg.data.label_fraction
    tag = fraction_tag(fraction)
    results: dict[str, dict[str, Any]] = {}
    frozen = [p for p in eval_cfg.protocols if PROTOCOLS[p].frozen]
    if frozen:
        feats = frozen_features(run_dir, eval_cfg.checkpoint, fraction)
        dataset = feats.dataset
        test_y = feats.test[1]
        for protocol in frozen:
            scores, selection = PROTOCOLS[protocol].score(feats, eval_cfg[protocol])
            predicted = scores.argmax(1)
            matrix = confusion(test_y, predicted, dataset.num_classes)
            results[protocol] = {
                "run": str(run_dir), "protocol": protocol, "checkpoint": eval_cfg.checkpoint,
                "label_fraction": fraction, "labelled_train_images": len(feats.train[1]),
                "labels": {"val_labels": run_cfg.data.val_labels, **feats.labels},
                **selection,
                "test": classification_metrics(test_y, predicted, dataset.num_classes,
                                               scores=scores, ordinal=dataset.ordinal),
                "test_confusion_matrix": matrix,
            }
            if eval_cfg.plots.confusion_matrix:
                plot_confusion_matrix(matrix, dataset.class_names,
                                      folder.eval_confusion_picture(protocol, fraction),
                                      title=f"{run_cfg.name}: {protocol} probe, {tag}")
        if eval_cfg.plots.embedding:
            x, y = subsample(*feats.test, eval_cfg.plots.embedding_samples)
            plot_embeddings({f"{run_cfg.name} (test)": (x, y)}, dataset.class_names,
                            folder.eval_embedding_picture)
    if "finetune" in eval_cfg.protocols:
        tuned = finetune(run_dir, eval_cfg.checkpoint, fraction, eval_cfg.finetune)
        results["finetune"] = {"run": str(run_dir), "protocol": "finetune",
                               "checkpoint": eval_cfg.checkpoint, "label_fraction": fraction,
                               "finetune_run": tuned["name"], **tuned}
    folder.eval_dir.mkdir(parents=True, exist_ok=True)
    for protocol, content in results.items():
        folder.eval_file(protocol, fraction).write_text(result_json(content))
    return results


def subsample(x: torch.Tensor, y: torch.Tensor, n: int,
              seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """At most ``n`` rows of ``(x, y)``, drawn without replacement under a fixed seed."""
    if len(y) <= n:
        return x, y
    index = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:n]
    return x[index], y[index]
