"""A run folder, ``<checkpoint.dir>/<name>/``: the one module that knows its layout.

::

    config.yaml          the validated cfg (a rerun must match it to resume)
    run.lock             claimed by the process that trains the run (:mod:`fkt_plugin.locks`)
    checkpoints/         last.ckpt (every epoch, for auto-resume) and best.ckpt (by val_acc1,
                         with selection=best_val), each replaced whole (never half-written)
    metrics.csv          Lightning's CSV log, joined across resumptions
    results.json         :class:`Results`: final validation and test metrics of the selected
                         model, the labels used, the optimiser steps, whether the validation
                         accuracy was still rising when training ended
    confusion_matrix.png test confusion matrix of the selected model
    eval/<protocol>-labels<fraction>.json
                         evaluations of the trained backbone (:mod:`fkt_plugin.evaluation`);
                         fine-tuning trains a sibling run ``<name>-finetune-labels<fraction>``
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fkt_plugin.args.schemas import RunSchema, defaults_of
from fkt_plugin.config import mapping_copy, plain_dict
from fkt_plugin.errors import CheckpointError, ConfigError, MissingPathError
from fkt_plugin.evaluation.convergence import StillRising
from fkt_plugin.evaluation.result_json import result_json
from fkt_plugin.locks import Held, hold
from fkt_plugin.tables import read_rows, write_rows

# What a run saved before a setting existed did, where that differs from today's default:
# validation labels were on top of the budget, and the best validation epoch was scored.
LEGACY_RUN_SETTINGS = {"data.val_labels": "extra", "selection": "best_val"}

# Keys that may change between an interrupted run and its resumption without changing the run.
RESUMABLE_KEYS = {"accelerator", "devices", "num_nodes", "strategy", "data.num_workers",
                  "data.pin_memory", "data.persistent_workers", "log_every_n_steps",
                  "data.train_path", "data.val_path", "checkpoint", "auto_resume",
                  "performance.compile", "performance.compile_mode", "logger", "wandb"}


def fraction_tag(fraction: float) -> str:
    """``labels0.1`` for a label fraction of 0.1: the suffix of evaluation files and runs."""
    return f"labels{fraction:g}"


@dataclass
class Results:
    """``results.json`` of a training run (the selected model's metrics and what produced them).

    Files written before a field existed read it as None.
    """

    name: str | None = None
    method: str | None = None
    dataset: str | None = None
    backbone: str | None = None
    label_fraction: float | None = None
    seed: int | None = None
    max_epochs: int | None = None
    max_steps: int | None = None
    optimizer_steps: int | None = None
    epochs: int | None = None
    train_images: int | None = None
    labelled_train_images: int | None = None
    # {"val_labels", "train", "val", "total"}: the labels the run used.
    labels: dict[str, Any] | None = None
    selection: str | None = None
    resumed_from: str | None = None
    initialised_from: dict[str, str] | None = None
    fit_seconds: float | None = None
    # Which hardware and precision gave the numbers and the seconds (studies may mix them).
    device: str | None = None
    precision: str | None = None
    selected_checkpoint: str | None = None
    # Set where the run ended with its validation accuracy still rising (its best at the last
    # validation): a schedule too short for it.
    val_still_rising: StillRising | None = None
    val: dict[str, float] | None = None
    test: dict[str, float] = dataclasses.field(default_factory=dict)
    test_confusion_matrix: list[list[int]] = dataclasses.field(default_factory=list)
    # G-SimCLR's guided batches: how often a batch held two images of one cluster (only in
    # runs with data.batch_sampler=guided).
    guided_batches: dict[str, Any] | None = None
    # The sha256 of the declared design of the sweep that made the run (fkt-compare only).
    declaration: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields as ``results.json`` holds them (``guided_batches`` and ``declaration``
        only where set)."""
        content = dataclasses.asdict(self)
        for optional in ("guided_batches", "declaration"):
            if content[optional] is None:
                del content[optional]
        return content

    @classmethod
    def from_dict(cls, content: dict[str, Any]) -> Results:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in content.items() if k in known})


def _identity_keys(cfg: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted key → value of the keys that define a run (every key but the resumable ones)."""
    flat: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name not in RESUMABLE_KEYS:
            flat |= _identity_keys(value, f"{name}.")
        elif name not in RESUMABLE_KEYS:
            flat[name] = value
    return flat


class RunDirectory:
    """The files of one run folder.

    Args:
        path: The folder, ``<checkpoint.dir>/<name>``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def of(cls, cfg: DictConfig) -> RunDirectory:
        """The folder of a run cfg: ``<checkpoint.dir>/<name>``."""
        return cls(Path(cfg.checkpoint.dir) / cfg.name)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def metrics_csv(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def results_file(self) -> Path:
        return self.path / "results.json"

    @property
    def confusion_picture(self) -> Path:
        return self.path / "confusion_matrix.png"

    @property
    def eval_dir(self) -> Path:
        return self.path / "eval"

    def eval_file(self, protocol: str, fraction: float) -> Path:
        """Where an evaluation protocol's results at a label fraction are written."""
        return self.eval_dir / f"{protocol}-{fraction_tag(fraction)}.json"

    def eval_confusion_picture(self, protocol: str, fraction: float) -> Path:
        return self.eval_dir / f"{protocol}-{fraction_tag(fraction)}-confusion.png"

    @property
    def eval_embedding_picture(self) -> Path:
        return self.eval_dir / "embedding-test.png"

    def finetune_name(self, fraction: float) -> str:
        """The name of the sibling run that fine-tunes this run's backbone at a fraction."""
        return f"{self.name}-finetune-{fraction_tag(fraction)}"

    @contextmanager
    def claimed(self) -> Iterator[None]:
        """Holds the folder for a run's lifetime: a second run of the same name is refused.

        Raises:
            ConfigError: Another process trains this run now (the message names it).
        """
        try:
            with hold(self.path / "run.lock", f"run folder {self.path}"):
                yield
        except Held as held:
            raise ConfigError(f"{held}: a run of the same name is training there now; wait for "
                              "it, or give this run another name=...") from None

    def save_config(self, cfg: DictConfig) -> None:
        """Writes ``config.yaml``, or checks that the run already there has the same cfg.

        Raises:
            ConfigError: The folder holds a run of another cfg (the message lists the keys).
        """
        if self.config_file.exists():
            saved = _identity_keys(plain_dict(mapping_copy(OmegaConf.load(self.config_file))))
            now = _identity_keys(plain_dict(cfg))
            # A key that an older version did not write yet counts as what that version did.
            defaults = _identity_keys(defaults_of(RunSchema)) | LEGACY_RUN_SETTINGS
            changed = sorted(k for k in saved.keys() | now.keys()
                             if saved.get(k, defaults.get(k)) != now.get(k))
            if changed:
                details = "; ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}"
                                    for k in changed[:8])
                raise ConfigError(
                    f"{self.path} holds a run with a different config ({details}); give this "
                    "run another name=..., or delete that directory to start over")
        self.path.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, self.config_file)

    def load_config(self) -> DictConfig:
        """The saved cfg (a setting it predates reads as what the run did then,
        :data:`LEGACY_RUN_SETTINGS`), as the run's backbone and data are rebuilt from it.

        Raises:
            MissingPathError: No ``config.yaml``: not a run folder.
        """
        if not self.config_file.is_file():
            raise MissingPathError(f"{self.config_file} does not exist: is {self.path} a run "
                                   "directory made by fkt-train (<checkpoint.dir>/<name>)?")
        cfg = OmegaConf.load(self.config_file)
        if not isinstance(cfg, DictConfig):
            raise ConfigError(f"{self.config_file} is not a mapping of run settings")
        for key, value in LEGACY_RUN_SETTINGS.items():
            if OmegaConf.select(cfg, key, default=None) is None:
                OmegaConf.update(cfg, key, value, force_add=True)
        # Filled from the dataset when the run is prepared; not recipe keys.
        for key in ("num_classes", "num_channels", "ordinal", "class_weights"):
            cfg.data.pop(key, None)
        # A student trained on cluster ids is evaluated (and fine-tuned) on the real labels,
        # and a run whose batches the clusters guided is fine-tuned with uniform batches.
        if cfg.data.get("pseudo_labels") is not None:
            cfg.data.pseudo_labels = None
            if cfg.data.get("batch_sampler") == "guided":
                cfg.data.batch_sampler = "random"
        return cfg

    def checkpoint(self, checkpoint: str) -> Path:
        """A checkpoint file by name (``last.ckpt``, ``best.ckpt``), or an explicit path.

        Raises:
            CheckpointError: No such file.
        """
        path = Path(checkpoint)
        if not path.is_file():
            path = self.checkpoints / checkpoint
        if not path.is_file():
            found = sorted(p.name for p in self.checkpoints.glob("*.ckpt"))
            raise CheckpointError(f"checkpoint {checkpoint!r} not found in {self.checkpoints} "
                                  f"(found: {', '.join(found) or 'none'}); has the run finished?")
        return path

    def trained(self) -> bool:
        """Whether the run finished here: its results and its last checkpoint are present (a
        study's committed result files travel without checkpoints)."""
        return self.results_file.is_file() and (self.checkpoints / "last.ckpt").is_file()

    @property
    def _metrics_before_resume(self) -> Path:
        return self.path / "metrics.before-resume.csv"

    def keep_metrics_before_resume(self) -> None:
        """Sets the epochs logged so far aside: Lightning's CSV logger starts afresh."""
        earlier = self._metrics_before_resume
        if not self.metrics_csv.exists():
            return
        if earlier.exists():
            write_rows(earlier, read_rows(earlier) + read_rows(self.metrics_csv))
            self.metrics_csv.unlink()
        else:
            self.metrics_csv.replace(earlier)

    def join_metrics_after_resume(self) -> None:
        """Puts the epochs set aside back in front of the resumed run's rows."""
        earlier = self._metrics_before_resume
        if earlier.exists() and self.metrics_csv.exists():
            write_rows(earlier, read_rows(earlier) + read_rows(self.metrics_csv))
            earlier.replace(self.metrics_csv)

    def write_results(self, results: Results) -> None:
        self.results_file.write_text(result_json(results.to_dict()))

    def read_results(self) -> Results:
        """The run's results.

        Raises:
            MissingPathError: The run has not finished (no results.json).
        """
        if not self.results_file.is_file():
            raise MissingPathError(f"{self.results_file} does not exist: has the run finished?")
        return Results.from_dict(json.loads(self.results_file.read_text()))
