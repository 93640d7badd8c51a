"""A training run: cfg → datamodule + method + Trainer → checkpoints, CSV logs, ``results.json``.

Layout of a run directory ``<checkpoint.dir>/<name>/``::

    config.yaml          the validated cfg (a rerun must match it to resume)
    checkpoints/         last.ckpt (every epoch, for auto-resume) and best.ckpt (by val_acc1,
                         with selection=best_val)
    metrics.csv          Lightning's CSV log
    results.json         final validation and test metrics of the selected model, the labels
                         used (train, validation, total), the optimiser steps, and whether the
                         validation accuracy was still rising when training ended
    confusion_matrix.png test confusion matrix of the selected model
    eval/                frozen-feature evaluations (:mod:`fkt_plugin.evaluation.protocols`)
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger
from pytorch_lightning.utilities import rank_zero_only

from fkt_plugin.args.run import RUN_DEFAULTS, validate_run_cfg
from fkt_plugin.checkpoints import LEGACY_RUN_SETTINGS, load_backbone_weights
from fkt_plugin.config import mapping_copy, plain_dict
from fkt_plugin.data import LOADER_KEYS, FKTDataModule, ImageDataset, load_dataset, pseudo_labels
from fkt_plugin.data.splits import class_weights
from fkt_plugin.errors import ConfigError, MissingDependencyError
from fkt_plugin.evaluation.callbacks import GuidedBatchLog, TestMetrics
from fkt_plugin.evaluation.convergence import still_rising
from fkt_plugin.evaluation.plots import plot_confusion_matrix, read_training_metric
from fkt_plugin.evaluation.result_json import result_json
from fkt_plugin.methods import METHODS, BaseMethod
from fkt_plugin.tables import read_rows, write_rows

# Keys that may change between an interrupted run and its resumption without changing the run.
_RESUMABLE_KEYS = {"accelerator", "devices", "num_nodes", "strategy", "data.num_workers",
                   "data.pin_memory", "data.persistent_workers", "log_every_n_steps",
                   "data.train_path", "data.val_path", "checkpoint", "auto_resume",
                   "performance.compile", "performance.compile_mode", "logger", "wandb"}


def run_dir_of(cfg: DictConfig) -> Path:
    """Where a run's files go: ``<checkpoint.dir>/<name>``."""
    return Path(cfg.checkpoint.dir) / cfg.name


def _identity_keys(cfg: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted key → value of the keys that define a run (every key but the resumable ones)."""
    flat: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name not in _RESUMABLE_KEYS:
            flat |= _identity_keys(value, f"{name}.")
        elif name not in _RESUMABLE_KEYS:
            flat[name] = value
    return flat


def claim_run_dir(run_dir: Path, cfg: DictConfig) -> None:
    """Writes ``config.yaml``, or checks that an existing run there has the same cfg."""
    saved_path = run_dir / "config.yaml"
    if saved_path.exists():
        saved = _identity_keys(plain_dict(mapping_copy(OmegaConf.load(saved_path))))
        now = _identity_keys(plain_dict(cfg))
        # A key that an older version did not write yet counts as what that version did.
        defaults = _identity_keys(RUN_DEFAULTS) | LEGACY_RUN_SETTINGS
        changed = sorted(k for k in saved.keys() | now.keys()
                         if saved.get(k, defaults.get(k)) != now.get(k))
        if changed:
            details = "; ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in changed[:8])
            raise ConfigError(
                f"{run_dir} holds a run with a different config ({details}); give this run "
                "another name=..., or delete that directory to start over"
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, saved_path)


def make_loggers(cfg: DictConfig, run_dir: Path) -> list[Logger]:
    """metrics.csv always (the curves and resumption read it); TensorBoard and Weights & Biases
    as the cfg asks.

    Raises:
        MissingDependencyError: The logger's package is not installed.
    """
    loggers: list[Logger] = [CSVLogger(run_dir, name="", version="")]
    if cfg.logger == "tensorboard":
        try:
            loggers.append(TensorBoardLogger(run_dir, name="tensorboard", version=""))
        except ModuleNotFoundError:
            raise MissingDependencyError("logger=tensorboard needs tensorboard: pip install "
                                         "tensorboard") from None
    if cfg.wandb.enabled:
        try:
            loggers.append(WandbLogger(name=cfg.name, project=cfg.wandb.project,
                                       entity=cfg.wandb.entity, offline=cfg.wandb.offline,
                                       save_dir=str(run_dir)))
        except ModuleNotFoundError:
            raise MissingDependencyError("wandb.enabled=true needs wandb: pip install wandb, "
                                         "or wandb.enabled=false") from None
    return loggers


def _finished_epochs(checkpoint: Path) -> int | str:
    """The epochs a Lightning checkpoint had finished (``?`` if it does not say)."""
    try:
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception:  # an unreadable file is Lightning's to report when it restores it
        return "?"
    epoch = saved.get("epoch") if isinstance(saved, dict) else None
    return epoch + 1 if isinstance(epoch, int) else "?"


def _append_csv(earlier: Path, later: Path) -> None:
    """Appends the rows of CSV ``later`` to CSV ``earlier`` (header = union of both)."""
    write_rows(earlier, read_rows(earlier) + read_rows(later))


def validation_interval(cfg: DictConfig, datamodule: FKTDataModule) -> int | None:
    """Optimiser steps between validations: ``val_every_n_steps``; for a ``max_steps`` run
    without it, the divisor of ``max_steps`` closest to an epoch's steps, so that the last step
    is validated (an epoch-based validation would miss a run that ends inside an epoch, or never
    reaches an epoch's end); None: every epoch."""
    if cfg.val_every_n_steps is not None:
        return int(cfg.val_every_n_steps)
    if cfg.max_steps is None:
        return None
    per_epoch = max(1, len(datamodule.train_dataloader()))
    divisors = [d for d in range(1, cfg.max_steps + 1) if cfg.max_steps % d == 0]
    return min(divisors, key=lambda d: (abs(d - per_epoch), d))


def prepare(cfg: DictConfig) -> tuple[DictConfig, ImageDataset, FKTDataModule]:
    """Validates cfg, loads the dataset, fills ``data.num_classes/num_channels``, builds splits."""
    cfg = validate_run_cfg(cfg)
    # A property of this machine, not of the recipe: checked here, before the run directory is
    # claimed, rather than when a recipe is validated elsewhere (a sweep planned on a laptop).
    if cfg.sync_batchnorm and not torch.cuda.is_available():
        raise ConfigError("sync_batchnorm=true needs GPUs (torch's SyncBatchNorm has no CPU "
                          "kernel); set sync_batchnorm=false")
    dataset = load_dataset(cfg.data.dataset, **{k: cfg.data[k] for k in LOADER_KEYS})
    clusters = None
    if cfg.data.pseudo_labels is not None and cfg.data.batch_sampler == "guided":
        clusters = pseudo_labels.cluster_ids(dataset, cfg.data.dataset, cfg.data.pseudo_labels)
    elif cfg.data.pseudo_labels is not None:
        dataset = pseudo_labels.apply(dataset, cfg.data.dataset, cfg.data.pseudo_labels)
    method_cls = METHODS[cfg.method]
    datamodule = FKTDataModule.from_cfg(cfg, dataset, labelled_only=not method_cls.uses_unlabelled,
                                        clusters=clusters)
    with open_dict(cfg):
        cfg.data.num_classes = dataset.num_classes
        cfg.data.num_channels = dataset.num_channels
        cfg.data.ordinal = dataset.ordinal
        cfg.data.class_weights = (class_weights(datamodule.labelled_train.targets,
                                                dataset.num_classes)
                                  if cfg.data.class_weighted_loss else None)
    return cfg, dataset, datamodule


def device_description(device: torch.device, count: int) -> str:
    """The hardware of a run, e.g. ``1 x cpu`` or ``4 x NVIDIA H100 80GB HBM3``."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    return f"{count} x {name}"


def train(cfg: DictConfig, callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """Trains (or resumes) one run, selects the best epoch on validation, tests it once.

    Args:
        cfg: A recipe (solo-learn schema); validated and completed here.
        callbacks: Extra Lightning callbacks.

    Returns:
        The content written to ``results.json``.
    """
    cfg, dataset, datamodule = prepare(cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    model: BaseMethod = METHODS[cfg.method](cfg)
    run_dir = run_dir_of(cfg)
    # Under DDP every process runs this function; the files of the run are rank 0's to write
    # (the rank is known from the launcher's environment before the Trainer exists).
    is_rank_zero = getattr(rank_zero_only, "rank", 0) == 0
    if is_rank_zero:
        claim_run_dir(run_dir, cfg)
    ckpt_dir = run_dir / "checkpoints"
    checkpointing: list[Callback] = []
    has_val = len(datamodule.val) > 0
    val_every = validation_interval(cfg, datamodule) if has_val else None
    if cfg.checkpoint.enabled:
        best = cfg.selection == "best_val"
        checkpointing.append(ModelCheckpoint(
            dirpath=ckpt_dir, filename="best", monitor="val_acc1" if best else None, mode="max",
            save_top_k=1 if best else 0, save_last=True, enable_version_counter=False,
            # With validation every N steps, a checkpoint is written after each validation.
            every_n_epochs=cfg.checkpoint.frequency if val_every is None else 1,
        ))
    last = ckpt_dir / "last.ckpt"
    resume = str(last) if cfg.auto_resume.enabled and last.exists() else None
    if resume and is_rank_zero:
        print(f"resuming {cfg.name} from {last} after epoch {_finished_epochs(last)} "
              "(auto_resume.enabled=false starts over)", flush=True)
    # Lightning's CSV logger starts metrics.csv afresh; keep the epochs before a resumption.
    metrics_csv, earlier_csv = run_dir / "metrics.csv", run_dir / "metrics.before-resume.csv"
    if is_rank_zero and resume and metrics_csv.exists():
        if earlier_csv.exists():
            _append_csv(earlier_csv, metrics_csv)
            metrics_csv.unlink()
        else:
            metrics_csv.replace(earlier_csv)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Experiment logs directory")
        loggers = make_loggers(cfg, run_dir)
    test_metrics = TestMetrics(dataset.num_classes, dataset.ordinal)
    trainer = pl.Trainer(
        # With max_steps the run ends after that many optimiser steps, whatever the epochs.
        max_epochs=cfg.max_epochs if cfg.max_steps is None else -1,
        max_steps=cfg.max_steps if cfg.max_steps is not None else -1,
        accelerator=cfg.accelerator, devices=cfg.devices,
        num_nodes=cfg.num_nodes, strategy=cfg.strategy, sync_batchnorm=cfg.sync_batchnorm,
        # The datamodule's batch samplers split every global batch across processes already.
        use_distributed_sampler=False, precision=cfg.precision, logger=loggers,
        callbacks=[*checkpointing, test_metrics, GuidedBatchLog(), *callbacks],
        log_every_n_steps=cfg.log_every_n_steps,
        # Every val_every steps across epochs, or once an epoch.
        val_check_interval=val_every if val_every is not None else 1.0,
        check_val_every_n_epoch=None if val_every is not None else 1,
        enable_checkpointing=cfg.checkpoint.enabled, enable_model_summary=False,
    )
    initialised_from = None
    if cfg.pretrained_feature_extractor and resume is None:
        report = load_backbone_weights(model.backbone, cfg.pretrained_feature_extractor)
        initialised_from = {"checkpoint": str(cfg.pretrained_feature_extractor),
                            "keys": str(report)}
    started = time.time()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Experiment logs directory")
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume)
    if is_rank_zero and earlier_csv.exists() and metrics_csv.exists():
        _append_csv(earlier_csv, metrics_csv)
        earlier_csv.replace(metrics_csv)
    rising = (still_rising(read_training_metric(metrics_csv, "val_acc1"))
              if is_rank_zero and has_val and metrics_csv.exists() else None)
    if rising is not None:
        print(f"{cfg.name}: validation accuracy was still rising when training ended "
              f"({rising['earlier_val_acc1']:.3f} at step {rising['earlier_step']}, "
              f"{rising['val_acc1']:.3f} at the last step, {rising['step']}, its best): the "
              "schedule may be too short for this run; more epochs (max_epochs=, or "
              "finetune.max_epochs= for fkt-eval's fine-tuning) may give a better model",
              flush=True)
    # best_val reloads the best checkpoint; last scores the weights training ended with.
    selected = "best" if cfg.checkpoint.enabled and cfg.selection == "best_val" else None
    val = (trainer.validate(model, datamodule=datamodule, ckpt_path=selected, verbose=False)[0]
           if has_val else None)
    trainer.test(model, datamodule=datamodule, ckpt_path=selected, verbose=False)
    results = {
        "name": cfg.name, "method": cfg.method, "dataset": cfg.data.dataset,
        "backbone": cfg.backbone.name, "label_fraction": cfg.data.label_fraction,
        "seed": cfg.seed, "max_epochs": cfg.max_epochs, "max_steps": cfg.max_steps,
        "optimizer_steps": trainer.global_step, "epochs": trainer.current_epoch,
        "train_images": len(datamodule.train),
        "labelled_train_images": len(datamodule.labelled_train),
        "labels": {"val_labels": cfg.data.val_labels, **datamodule.labels},
        "selection": cfg.selection,
        "resumed_from": resume, "initialised_from": initialised_from,
        "fit_seconds": round(time.time() - started, 1),
        # Which hardware and precision gave the numbers and the seconds (studies may mix them).
        # The strategy's device, not the model's: Lightning moves the model back to the CPU
        # when fitting and testing end.
        "device": device_description(trainer.strategy.root_device,
                                     trainer.num_devices * trainer.num_nodes),
        "precision": str(cfg.precision),
        "selected_checkpoint": str(ckpt_dir / "best.ckpt") if selected else None,
        # Set where the run ended with its validation accuracy still rising (its best at
        # the last validation): a schedule too short for it.
        "val_still_rising": rising,
        "val": ({k.removeprefix("val_"): float(v) for k, v in val.items()}
                if val is not None else None),
        "test": test_metrics.metrics,
        "test_confusion_matrix": test_metrics.confusion,
    }
    guided = datamodule.guided_sampler
    if guided is not None:
        results["guided_batches"] = {
            "pseudo_labels": str(cfg.data.pseudo_labels),
            "same_cluster_pairs_per_epoch": [s.same_cluster_pairs for s in guided.history],
            "same_cluster_pairs_total": sum(s.same_cluster_pairs for s in guided.history),
            "false_negative_share_per_epoch": [s.same_class_share for s in guided.history],
            "false_negative_share_random_batches": (guided.history[0].random_same_class_share
                                                    if guided.history else None),
        }
    if is_rank_zero:  # under DDP every process has the same results; one writes them
        plot_confusion_matrix(test_metrics.confusion, dataset.class_names,
                              run_dir / "confusion_matrix.png", title=f"{cfg.name} (test)")
        (run_dir / "results.json").write_text(result_json(results))
    return results
