"""The base every method shares: backbone, classifier, optimiser, schedule, logging, and the
per-epoch validation (accuracy of its classifier, kNN on the features of the epoch).

A method file holds only its heads and its self-supervised loss (:meth:`BaseMethod.ssl_loss`,
or the whole :meth:`BaseMethod.training_losses` for a joint loss);
solo-learn's contract applies: one cfg, ``add_and_assert_specific_cfg``, ``learnable_params``,
batches of ``(idx, views, targets)`` with target -1 for unlabelled images.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from fkt_plugin.augmentation.schema import count_views
from fkt_plugin.backbones import build_backbone
from fkt_plugin.errors import ConfigError, NonFiniteLossError
from fkt_plugin.evaluation.metrics import topk_accuracy
from fkt_plugin.losses import masked_cross_entropy
from fkt_plugin.optimizers import OPTIMIZERS, SCHEDULERS, WARMUP_SCHEDULERS

Batch = tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]


class BaseMethod(pl.LightningModule):
    """Shared training machinery of all methods.

    A subclass sets the class attributes, adds its heads in ``__init__`` and their parameters to
    :attr:`learnable_params`, and implements :meth:`ssl_loss` (unless ``ssl_views`` is 0).

    Attributes:
        default_kwargs: Defaults of ``cfg.method_kwargs``; also the set of keys the method reads.
        ssl_views: How many leading views the self-supervised loss uses (0: none).
        supervised_grad: Whether the classification loss trains the encoder (supervised and joint
            methods) or only a linear classifier on detached features (solo-learn's online
            classifier, for self-supervised methods).
        uses_unlabelled: Whether the method learns anything from images with target -1; if not,
            the datamodule serves only labelled images.

    Args:
        cfg: A validated run cfg (:func:`fkt_plugin.args.run.validate_run_cfg`) with
            ``data.num_classes`` and ``data.num_channels`` filled from the dataset.
    """

    default_kwargs: ClassVar[dict[str, Any]] = {"supervised_view": 0}
    ssl_views: ClassVar[int] = 2
    supervised_grad: ClassVar[bool] = False
    uses_unlabelled: ClassVar[bool] = True
    class_weights: torch.Tensor | None

    def __init__(self, cfg: DictConfig | dict[str, Any]) -> None:
        super().__init__()
        cfg = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)
        cfg = self.add_and_assert_specific_cfg(cfg)
        for key in ("num_classes", "num_channels"):
            if cfg.data.get(key) is None:
                raise ConfigError(f"data.{key} is missing: the runner fills it from the dataset")
        self.cfg = cfg
        self.save_hyperparameters({"cfg": OmegaConf.to_container(cfg, resolve=True)})
        self.backbone, self.features_dim = build_backbone(
            cfg.backbone.name, in_channels=cfg.data.num_channels, **cfg.backbone.kwargs
        )
        # Channels-last convolutions run ~1.6x faster on CPUs and use tensor cores on GPUs.
        self.memory_format = (torch.contiguous_format if cfg.performance.disable_channel_last
                              else torch.channels_last)
        self.backbone.to(memory_format=self.memory_format)
        if cfg.performance.compile:
            # In place, so parameter names (checkpoints, exports) stay those of the plain module.
            self.backbone.compile(mode=cfg.performance.compile_mode)
        self.num_classes: int = cfg.data.num_classes
        self.classifier = nn.Linear(self.features_dim, self.num_classes)
        self.supervised_view: int = cfg.method_kwargs.supervised_view
        weights = cfg.data.get("class_weights")
        self.register_buffer("class_weights",
                             torch.tensor(weights, dtype=torch.float32) if weights else None)
        # What the last step encoded, for callbacks (the online kNN): the supervised view's
        # features and targets of a training step, the features of an evaluation step.
        self.supervised_feats = torch.empty(0)
        self.supervised_targets = torch.empty(0, dtype=torch.long)
        self.eval_feats = torch.empty(0)
        # Device-side running sums and the first non-finite loss, read by the host only at
        # logging time: a check per step would stall the device once per step.
        self._train_hits = torch.zeros(2)
        self._first_bad_step = torch.full((), -1, dtype=torch.int64)
        self._bad_terms: dict[str, torch.Tensor] = {}

    @classmethod
    def add_and_assert_specific_cfg(cls, cfg: DictConfig) -> DictConfig:
        """Fills ``cfg.method_kwargs`` from :attr:`default_kwargs` and checks it.

        Keys the method does not read (say, left over after ``method=simclr`` swapped the method
        of a ``fkt_joint`` recipe) are reported and removed.

        Raises:
            ConfigError: A value is out of range, or the augmentations make too few views.
        """
        with open_dict(cfg):
            if cfg.get("method_kwargs") is None:
                cfg.method_kwargs = {}
            unused = sorted(set(cfg.method_kwargs) - set(cls.default_kwargs))
            if unused:
                warnings.warn(f"method_kwargs not used by {cfg.method}: {', '.join(unused)} "
                              "(ignored)", stacklevel=2)
                for key in unused:
                    del cfg.method_kwargs[key]
            for key, value in cls.default_kwargs.items():
                if key not in cfg.method_kwargs:
                    cfg.method_kwargs[key] = value
        cls.check_kwargs(cfg.method_kwargs)
        views = count_views(cfg.augmentations)
        needed = max(cls.ssl_views, cfg.method_kwargs.supervised_view + 1)
        if views < needed:
            raise ConfigError(
                f"{cfg.method} needs {needed} views (self-supervised: {cls.ssl_views}, "
                f"method_kwargs.supervised_view={cfg.method_kwargs.supervised_view}) but the "
                f"augmentations make {views}; add crops/pipelines or lower supervised_view"
            )
        return cfg

    @staticmethod
    def check_kwargs(kwargs: DictConfig) -> None:
        """Validates method-specific kwargs; subclasses extend it."""
        if not (isinstance(kwargs.supervised_view, int) and kwargs.supervised_view >= 0):
            raise ConfigError(f"method_kwargs.supervised_view={kwargs.supervised_view!r} must be "
                              "an int >= 0 (an index into the augmentation views)")

    @property
    def learnable_params(self) -> list[dict[str, Any]]:
        """Parameter groups; the online classifier gets its own lr and no weight decay."""
        classifier: dict[str, Any] = {"name": "classifier", "params": self.classifier.parameters()}
        if not self.supervised_grad:
            classifier |= {"lr": self.cfg.optimizer.classifier_lr, "weight_decay": 0.0}
        return [{"name": "backbone", "params": self.backbone.parameters()}, classifier]

    def configure_optimizers(self) -> Any:
        opt_cfg, sched_cfg = self.cfg.optimizer, self.cfg.scheduler
        optimizer = OPTIMIZERS[opt_cfg.name](self.learnable_params, lr=opt_cfg.lr,
                                             weight_decay=opt_cfg.weight_decay,
                                             **opt_cfg.kwargs)
        make_scheduler = SCHEDULERS[sched_cfg.name]
        if make_scheduler is None:
            return optimizer
        total_steps = int(self.trainer.estimated_stepping_batches)
        warmup_epochs = sched_cfg.warmup_epochs if sched_cfg.name in WARMUP_SCHEDULERS else 0
        if self.cfg.get("max_steps") is None:
            warmup_steps = int(warmup_epochs * total_steps / (self.trainer.max_epochs or 1))
        else:
            # A run of max_steps: warm-up epochs are epochs of this run's training split
            # (Lightning sizes the loader only when the epochs bound the run).
            self.trainer.fit_loop.setup_data()
            warmup_steps = int(warmup_epochs * self.trainer.num_training_batches)
            if warmup_steps > total_steps:
                raise ConfigError(
                    f"scheduler.warmup_epochs={warmup_epochs:g} is {warmup_steps} steps, longer "
                    f"than the run (max_steps={total_steps}): lower scheduler.warmup_epochs")
        scheduler = make_scheduler(optimizer, warmup_steps, total_steps,
                                   start=sched_cfg.warmup_start_lr / opt_cfg.lr,
                                   end=sched_cfg.min_lr / opt_cfg.lr)
        return [optimizer], [{"scheduler": scheduler, "interval": "step"}]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features and class logits of ``(B, C, H, W)`` inputs: ``feats`` (B, D), ``logits``."""
        feats = self.backbone(x.contiguous(memory_format=self.memory_format))
        return {"feats": feats, "logits": self.classifier(feats)}

    def encode_views(self, views: list[torch.Tensor],
                     used: list[int]) -> dict[int, torch.Tensor]:
        """Backbone features of the views ``used``, one pass per crop size.

        Views of one size go through the backbone together: fewer, larger kernels, and
        BatchNorm statistics shared across views as in SimCLR. Multi-crop views of another size
        get their own pass.
        """
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i in used:
            by_size.setdefault(tuple(views[i].shape[-2:]), []).append(i)
        feats: dict[int, torch.Tensor] = {}
        for indices in by_size.values():
            x = torch.cat([views[i] for i in indices]).contiguous(memory_format=self.memory_format)
            feats |= dict(zip(indices, self.backbone(x).chunk(len(indices)), strict=True))
        return feats

    def ssl_loss(self, feats: list[torch.Tensor], views: list[torch.Tensor],
                 targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The method's self-supervised loss and the values to log under their solo-learn keys.

        Args:
            feats: Backbone features ``(B, D)`` of the first :attr:`ssl_views` views.
            views: All views of the batch, ``(B, C, H, W)`` each.
            targets: ``(B,)`` labels, -1 for unlabelled images.
        """
        raise NotImplementedError(f"{type(self).__name__} has ssl_views > 0 but no ssl_loss")

    def training_losses(self, feats: dict[int, torch.Tensor], views: list[torch.Tensor],
                        logits: torch.Tensor, targets: torch.Tensor
                        ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The training loss and its terms to log: :meth:`ssl_loss` plus the classifier's
        masked cross-entropy. A joint method overrides it with its own weighted loss.

        Args:
            feats: Backbone features ``(B, D)`` by view index (the views the step encoded).
            views: All views of the batch.
            logits: ``(B, C)`` classifier outputs of the supervised view.
            targets: ``(B,)`` labels, -1 for unlabelled images.
        """
        class_loss = masked_cross_entropy(logits, targets, self.class_weights)
        logs = {"train_class_loss": class_loss}
        if not self.ssl_views:
            return class_loss, logs
        ssl, ssl_logs = self.ssl_loss([feats[i] for i in range(self.ssl_views)], views, targets)
        return ssl + class_loss, logs | ssl_logs

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        _, views, targets = batch
        feats = self.encode_views(views, sorted(set(range(self.ssl_views))
                                                | {self.supervised_view}))
        sup_feats = feats[self.supervised_view]
        logits = self.classifier(sup_feats if self.supervised_grad else sup_feats.detach())
        loss, logs = self.training_losses(feats, views, logits, targets)
        logs["train_loss"] = loss
        self._track(loss, logs, logits, targets)
        self.log_dict(logs, on_epoch=True, on_step=False, sync_dist=True,
                      batch_size=len(targets))
        self.log("loss", loss, prog_bar=True, logger=False)
        self.supervised_feats, self.supervised_targets = sup_feats.detach(), targets
        return loss

    def _track(self, loss: torch.Tensor, logs: dict[str, torch.Tensor], logits: torch.Tensor,
               targets: torch.Tensor) -> None:
        """Updates, on the device, the epoch's labelled hits and count, and remembers the step
        and terms of the first non-finite loss."""
        labelled = targets >= 0
        hits = ((logits.detach().argmax(1) == targets) & labelled).sum()
        self._train_hits += torch.stack([hits, labelled.sum()]).to(self._train_hits)
        first = ~torch.isfinite(loss.detach()) & (self._first_bad_step < 0)
        self._first_bad_step = torch.where(first, self.global_step, self._first_bad_step)
        for key, value in logs.items():
            term = value.detach().float()
            self._bad_terms[key] = torch.where(first, term, self._bad_terms.get(key, term))

    def check_finite(self) -> None:
        """Raises if a step so far had a non-finite loss (one host-device synchronisation).

        Raises:
            NonFiniteLossError: The message names the step and the loss terms there.
        """
        step = int(self._first_bad_step)
        if step < 0:
            return
        terms = ", ".join(f"{k.removeprefix('train_')} {float(v):.4g}"
                          for k, v in self._bad_terms.items())
        raise NonFiniteLossError(
            f"{self.cfg.method}: the loss is not finite at step {step} (epoch "
            f"{self.current_epoch}; {terms}); checkpoints saved so far are intact. Lower "
            f"optimizer.lr (now {self.cfg.optimizer.lr}) or check the input data."
        )

    def on_train_batch_end(self, outputs: Any, batch: Batch, batch_idx: int) -> None:
        if self.global_step % self.cfg.log_every_n_steps == 0:
            self.check_finite()

    def on_fit_start(self) -> None:
        self._first_bad_step = self._first_bad_step.to(self.device)

    def on_train_epoch_start(self) -> None:
        self._train_hits = torch.zeros(2, device=self.device)

    def on_train_epoch_end(self) -> None:
        hits, labelled = self.trainer.strategy.reduce(self._train_hits, reduce_op="sum").tolist()
        if labelled:
            self.log("train_acc1", hits / labelled)

    def on_validation_epoch_start(self) -> None:
        # Before validation, hence before this epoch's checkpoints are written.
        self.check_finite()

    def _evaluate(self, batch: tuple[torch.Tensor, torch.Tensor],
                  prefix: str) -> dict[str, torch.Tensor]:
        x, targets = batch
        out = self(x)
        logits = out["logits"]
        metrics = {f"{prefix}_loss": F.cross_entropy(logits, targets),
                   f"{prefix}_acc1": topk_accuracy(logits, targets, 1)}
        if self.num_classes >= 5:
            metrics[f"{prefix}_acc5"] = topk_accuracy(logits, targets, 5)
        self.log_dict(metrics, on_epoch=True, sync_dist=True, batch_size=len(targets),
                      prog_bar=prefix == "val")
        self.eval_feats = out["feats"]
        return out

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor],
                  batch_idx: int) -> dict[str, torch.Tensor]:
        """Logs the test metrics and returns ``{"logits": (B, C)}`` for
        :class:`~fkt_plugin.evaluation.callbacks.TestMetrics`."""
        return {"logits": self._evaluate(batch, "test")["logits"]}
