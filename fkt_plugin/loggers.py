"""The experiment loggers a recipe names (``logger=``, solo-learn's ``wandb`` block).

``metrics.csv`` (Lightning's CSV logger) is always written: the curves, the still-rising check
and resumption read it. :data:`LOGGERS` holds what ``logger=`` may add beside it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger

from fkt_plugin.errors import MissingDependencyError
from fkt_plugin.registry import Registry

LoggerFactory = Callable[[DictConfig, Path], list[Logger]]

LOGGERS: Registry[LoggerFactory] = Registry("logger")
"""``logger`` → the loggers it adds to metrics.csv, given the run cfg and the run folder."""


@LOGGERS.register("csv")
def _csv_only(cfg: DictConfig, run_dir: Path) -> list[Logger]:
    return []


@LOGGERS.register("tensorboard")
def _tensorboard(cfg: DictConfig, run_dir: Path) -> list[Logger]:
    try:
        return [TensorBoardLogger(run_dir, name="tensorboard", version="")]
    except ModuleNotFoundError:
        raise MissingDependencyError("logger=tensorboard needs tensorboard: pip install "
                                     "tensorboard") from None


def _wandb(cfg: DictConfig, run_dir: Path) -> list[Logger]:
    try:
        return [WandbLogger(name=cfg.name, project=cfg.wandb.project, entity=cfg.wandb.entity,
                            offline=cfg.wandb.offline, save_dir=str(run_dir))]
    except ModuleNotFoundError:
        raise MissingDependencyError("wandb.enabled=true needs wandb: pip install wandb, or "
                                     "wandb.enabled=false") from None


def make_loggers(cfg: DictConfig, run_dir: Path) -> list[Logger]:
    """metrics.csv, what ``logger`` adds, and Weights & Biases where ``wandb.enabled``.

    Raises:
        MissingDependencyError: The logger's package is not installed.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Experiment logs directory")
        return [CSVLogger(run_dir, name="", version=""), *LOGGERS[cfg.logger](cfg, run_dir),
                *(_wandb(cfg, run_dir) if cfg.wandb.enabled else [])]
