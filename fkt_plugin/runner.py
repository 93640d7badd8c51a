"""A training run: cfg → datamodule + method + Trainer → a run folder
(:class:`fkt_plugin.run_dir.RunDirectory`: config, checkpoints, metrics, ``results.json``)."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, open_dict
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.utilities import rank_zero_only

from fkt_plugin.args.run import validate_run_cfg
from fkt_plugin.checkpoints import SameFolderCheckpointIO, check_resumable, load_backbone_weights
from fkt_plugin.data import LOADER_KEYS, FKTDataModule, ImageDataset, load_dataset, pseudo_labels
from fkt_plugin.data.splits import class_weights
from fkt_plugin.errors import ConfigError
from fkt_plugin.evaluation.callbacks import GuidedBatchLog, OnlineKNN, TestMetrics
from fkt_plugin.evaluation.convergence import StillRising, still_rising
from fkt_plugin.evaluation.plots import plot_confusion_matrix, read_training_metric
from fkt_plugin.loggers import make_loggers
from fkt_plugin.methods import METHODS, BaseMethod
from fkt_plugin.run_dir import Results, RunDirectory


def _finished_epochs(checkpoint: Path) -> int | str:
    """The epochs a Lightning checkpoint had finished (``?`` if it does not say)."""
    try:
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception:  # checked whole by check_resumable; an older format may not load here
        return "?"
    epoch = saved.get("epoch") if isinstance(saved, dict) else None
    return epoch + 1 if isinstance(epoch, int) else "?"


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


def _checkpointing(cfg: DictConfig, folder: RunDirectory, val_every: int | None
                   ) -> list[Callback]:
    """last.ckpt every epoch (or after each validation) and, with selection=best_val, best.ckpt
    by validation accuracy."""
    if not cfg.checkpoint.enabled:
        return []
    best = cfg.selection == "best_val"
    return [ModelCheckpoint(
        dirpath=folder.checkpoints, filename="best", monitor="val_acc1" if best else None,
        mode="max", save_top_k=1 if best else 0, save_last=True, enable_version_counter=False,
        # With validation every N steps, a checkpoint is written after each validation.
        every_n_epochs=cfg.checkpoint.frequency if val_every is None else 1)]


def _online_knn(cfg: DictConfig, dataset: ImageDataset) -> list[Callback]:
    """solo-learn's online kNN of the features where ``knn_eval.enabled``."""
    knn = cfg.knn_eval
    return [OnlineKNN(dataset.num_classes, knn.k, knn.temperature)] if knn.enabled else []


def _resume_point(cfg: DictConfig, folder: RunDirectory, announce: bool) -> Path | None:
    """last.ckpt when the run resumes (checked whole first), else None."""
    last = folder.checkpoints / "last.ckpt"
    if not (cfg.auto_resume.enabled and last.exists()):
        return None
    check_resumable(last)
    if announce:
        print(f"resuming {cfg.name} from {last} after epoch {_finished_epochs(last)} "
              "(auto_resume.enabled=false starts over)", flush=True)
    return last


def _report_still_rising(cfg: DictConfig, folder: RunDirectory) -> StillRising | None:
    """The still-rising check of the validation curve (None where it did not rise)."""
    rising = still_rising(read_training_metric(folder.metrics_csv, "val_acc1"))
    if rising is not None:
        print(f"{cfg.name}: validation accuracy was still rising when training ended "
              f"({rising['earlier_val_acc1']:.3f} at step {rising['earlier_step']}, "
              f"{rising['val_acc1']:.3f} at the last step, {rising['step']}, its best): the "
              "schedule may be too short for this run; more epochs (max_epochs=, or "
              "finetune.max_epochs= for fkt-eval's fine-tuning) may give a better model",
              flush=True)
    return rising


def train(cfg: DictConfig, callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """Trains (or resumes) one run, selects the best epoch on validation, tests it once.

    Args:
        cfg: A recipe (solo-learn schema); validated and completed here.
        callbacks: Extra Lightning callbacks.

    Returns:
        The content written to ``results.json`` (:class:`~fkt_plugin.run_dir.Results`).

    Raises:
        ConfigError: Another process trains a run of the same name now, or the folder holds a
            run of another cfg.
        CheckpointError: The last.ckpt to resume from is damaged.
    """
    cfg, dataset, datamodule = prepare(cfg)
    folder = RunDirectory.of(cfg)
    # Under DDP every process runs this function; the files of the run are rank 0's to write
    # (the rank is known from the launcher's environment before the Trainer exists).
    if getattr(rank_zero_only, "rank", 0) != 0:
        return _train_in(cfg, dataset, datamodule, folder, callbacks, rank_zero=False)
    with folder.claimed():
        folder.save_config(cfg)
        return _train_in(cfg, dataset, datamodule, folder, callbacks, rank_zero=True)


def _train_in(cfg: DictConfig, dataset: ImageDataset, datamodule: FKTDataModule,
              folder: RunDirectory, callbacks: Sequence[Callback], rank_zero: bool
              ) -> dict[str, Any]:
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    model: BaseMethod = METHODS[cfg.method](cfg)
    has_val = len(datamodule.val) > 0
    val_every = validation_interval(cfg, datamodule) if has_val else None
    resume = _resume_point(cfg, folder, announce=rank_zero)
    if rank_zero and resume:
        folder.keep_metrics_before_resume()
    test_metrics = TestMetrics(dataset.num_classes, dataset.ordinal)
    trainer = pl.Trainer(
        # With max_steps the run ends after that many optimiser steps, whatever the epochs.
        max_epochs=cfg.max_epochs if cfg.max_steps is None else -1,
        max_steps=cfg.max_steps if cfg.max_steps is not None else -1,
        accelerator=cfg.accelerator, devices=cfg.devices,
        num_nodes=cfg.num_nodes, strategy=cfg.strategy, sync_batchnorm=cfg.sync_batchnorm,
        # The datamodule's batch samplers split every global batch across processes already.
        use_distributed_sampler=False, precision=cfg.precision,
        logger=make_loggers(cfg, folder.path), plugins=[SameFolderCheckpointIO()],
        callbacks=[*_checkpointing(cfg, folder, val_every), *_online_knn(cfg, dataset),
                   test_metrics, GuidedBatchLog(), *callbacks],
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
    if rank_zero:
        folder.join_metrics_after_resume()
    rising = (_report_still_rising(cfg, folder)
              if rank_zero and has_val and folder.metrics_csv.exists() else None)
    # best_val reloads the best checkpoint; last scores the weights training ended with.
    selected = "best" if cfg.checkpoint.enabled and cfg.selection == "best_val" else None
    val = (trainer.validate(model, datamodule=datamodule, ckpt_path=selected, verbose=False)[0]
           if has_val else None)
    trainer.test(model, datamodule=datamodule, ckpt_path=selected, verbose=False)
    results = Results(
        name=cfg.name, method=cfg.method, dataset=cfg.data.dataset, backbone=cfg.backbone.name,
        label_fraction=cfg.data.label_fraction, seed=cfg.seed, max_epochs=cfg.max_epochs,
        max_steps=cfg.max_steps, optimizer_steps=trainer.global_step,
        epochs=trainer.current_epoch, train_images=len(datamodule.train),
        labelled_train_images=len(datamodule.labelled_train),
        labels={"val_labels": cfg.data.val_labels, **datamodule.labels},
        selection=cfg.selection, resumed_from=str(resume) if resume else None,
        initialised_from=initialised_from, fit_seconds=round(time.time() - started, 1),
        # The strategy's device, not the model's: Lightning moves the model back to the CPU
        # when fitting and testing end.
        device=device_description(trainer.strategy.root_device,
                                  trainer.num_devices * trainer.num_nodes),
        precision=str(cfg.precision),
        selected_checkpoint=str(folder.checkpoints / "best.ckpt") if selected else None,
        val_still_rising=rising,
        val=({k.removeprefix("val_"): float(v) for k, v in val.items()}
             if val is not None else None),
        test=test_metrics.metrics, test_confusion_matrix=test_metrics.confusion,
        guided_batches=_guided_batches(cfg, datamodule))
    if rank_zero:  # under DDP every process has the same results; one writes them
        plot_confusion_matrix(test_metrics.confusion, dataset.class_names,
                              folder.confusion_picture, title=f"{cfg.name} (test)")
        folder.write_results(results)
    return results.to_dict()


def _guided_batches(cfg: DictConfig, datamodule: FKTDataModule) -> dict[str, Any] | None:
    """What G-SimCLR's guided batches did, epoch by epoch (None for random batches)."""
    guided = datamodule.guided_sampler
    if guided is None:
        return None
    return {
        "pseudo_labels": str(cfg.data.pseudo_labels),
        "same_cluster_pairs_per_epoch": [s.same_cluster_pairs for s in guided.history],
        "same_cluster_pairs_total": sum(s.same_cluster_pairs for s in guided.history),
        "false_negative_share_per_epoch": [s.same_class_share for s in guided.history],
        "false_negative_share_random_batches": (guided.history[0].random_same_class_share
                                                if guided.history else None),
    }
