"""The datamodule: uint8 tensors in memory, batched by index, made into views.

Validation, training pool and labelled subset are index views of the dataset's splits
(:class:`ImageSplit`), so a memory-mapped dataset is read batch by batch, never copied whole.
With the device backends (``fused``, ``kornia``) a training batch is one fancy-indexing of the
uint8 tensor and its views are made on the device after the transfer; with the torchvision
backend loader workers make each image's views on the CPU, as solo-learn and lightly do.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler, SequentialSampler

from fkt_plugin.augmentation import (
    DeviceAugmentation,
    EvalTransform,
    KorniaAugmentation,
    PerImageViews,
)
from fkt_plugin.augmentation.schema import BACKENDS, check_device_resident, parse_pipelines
from fkt_plugin.config import require_choice
from fkt_plugin.data.dataset import ImageDataset, ImageSplit
from fkt_plugin.data.samplers import GuidedBatchSampler, TrainBatchSampler
from fkt_plugin.data.splits import VAL_LABELS, carve_labels

# The share of a GPU's free memory under which data.device_resident=auto keeps the training
# images on it.
RESIDENT_SHARE = 0.25


class IndexedBatches(Dataset):
    """Serves whole batches by fancy indexing: ``dataset[[i, j, ...]] -> (idx, images, targets)``.

    Indexing a tensor once per batch avoids per-image Python work and collation in the loader.
    """

    def __init__(self, split: ImageSplit) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor,
                                                            torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.int64)
        return index, self.split.read(index), self.split.targets[index]


class ResidentBatches(Dataset):
    """Serves whole batches as positions only: ``dataset[[i, j, ...]] -> (idx, targets)``, for
    training images kept on the device (``data.device_resident``), which are read there."""

    def __init__(self, split: ImageSplit) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.int64)
        return index, self.split.targets[index]


class AugmentedImages(Dataset):
    """Serves one image's views, made on the CPU: ``dataset[i] -> (i, views, target)``.

    The torchvision backend's dataset; the default collation stacks each view across the batch.
    """

    def __init__(self, split: ImageSplit, views: PerImageViews) -> None:
        self.split = split
        self.views = views

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[int, list[torch.Tensor], torch.Tensor]:
        return i, self.views(self.split.read(i)), self.split.targets[i]


def _warn_if_unguidable(clusters: torch.Tensor, global_batch: int, drop_last: bool) -> None:
    """Warns when guided batches cannot keep every cluster out of sharing a batch, and says by
    how much."""
    sizes = torch.bincount(clusters)
    k = int((sizes > 0).sum())
    if k < global_batch:
        q, r = divmod(global_batch, k)
        least = r * (q + 1) * q // 2 + (k - r) * q * (q - 1) // 2
        warnings.warn(f"data.pseudo_labels has k={k} clusters, fewer than the global batch of "
                      f"{global_batch} images: every batch holds at least {least} same-cluster "
                      "pairs; cluster with k >= the batch size", stacklevel=3)
        return
    batches = len(clusters) // global_batch if drop_last else -(-len(clusters) // global_batch)
    over = int((sizes - batches).clamp(min=0).sum())
    if over:
        warnings.warn(f"{int((sizes > batches).sum())} clusters of data.pseudo_labels hold more "
                      f"images than the {batches} batches of an epoch (largest: "
                      f"{int(sizes.max())}): at least {over} same-cluster pairs per epoch "
                      "cannot be avoided", stacklevel=3)


class FKTDataModule(pl.LightningDataModule):
    """Train / validation / test loaders over an :class:`ImageDataset`.

    The validation split is carved (stratified, seeded) from the training split, inside the label
    budget or outside it (``val_labels``, :func:`~fkt_plugin.data.splits.carve_labels`); the
    training pool's images beyond the budget get target -1. Training batches are
    ``(idx, views, targets)``; validation and test batches are ``(images, targets)``.

    Args:
        dataset: The loaded dataset.
        pipelines: The recipe's augmentation pipelines (solo-learn schema).
        batch_size: Images per batch.
        label_fraction: Share of each class of the training pool that keeps its label, in (0, 1].
        val_fraction: Share of each class of the training split held out for validation.
        split_seed: Seed of both splits, independent of the training seed so that runs with
            different seeds compare on the same labelled images.
        labelled_only: Train on the labelled images only (methods with no unsupervised term).
        num_workers: Loader worker processes (0 is fastest for in-memory tensors with the
            device backends; the torchvision backend needs several).
        labelled_share: If set, every training batch takes this share of its images from the
            labelled ones (:class:`TrainBatchSampler`); None: uniform batches.
        backend: Where views are made: ``fused`` (the view engine, on the device), ``kornia``
            (kornia's containers, on the device) or ``torchvision`` (per image, in workers).
        seed: Seed of the training batches' shuffle (the epoch is added to it).
        pin_memory: Page-locked host batches for faster copies; None: when CUDA is available.
        persistent_workers: Keep loader workers alive between epochs.
        clusters: ``(N_train,)`` cluster ids of the training split (``data.pseudo_labels``):
            training batches are then G-SimCLR's guided ones (:class:`GuidedBatchSampler`).
        val_labels: ``budget`` (validation labels count toward ``label_fraction``), ``extra``
            or ``none`` (no validation split).
        device_resident: Keep the training images on the training device, read each batch there
            (no host-to-device image copy, no loader work): ``True``, ``False``, or ``"auto"``
            (on a CUDA device, when they take under :data:`RESIDENT_SHARE` of its free memory).
            Device backends only.
        compile_views: ``torch.compile`` the view engine as one graph (``performance.compile``),
            with ``compile_mode`` (``reduce-overhead``: a CUDA graph).

    Attributes:
        labels: Labels the run uses: ``{"train": ..., "val": ..., "total": ...}``.

    Raises:
        ConfigError: ``backend`` is unknown, or ``device_resident=True`` with the torchvision
            backend.
    """

    def __init__(self, dataset: ImageDataset, pipelines: Sequence[DictConfig], batch_size: int,
                 label_fraction: float = 1.0, val_fraction: float = 0.1, split_seed: int = 0,
                 labelled_only: bool = False, num_workers: int = 0,
                 labelled_share: float | None = None, backend: str = "fused", seed: int = 0,
                 pin_memory: bool | None = None, persistent_workers: bool = True,
                 clusters: torch.Tensor | None = None, val_labels: str = "budget",
                 device_resident: bool | str = "auto", compile_views: bool = False,
                 compile_mode: str | None = None) -> None:
        super().__init__()
        require_choice(backend, "data.augmentation_backend", BACKENDS)
        require_choice(val_labels, "data.val_labels", VAL_LABELS)
        check_device_resident(device_resident, backend)
        self.device_resident = device_resident
        self.resident_images: torch.Tensor | None = None
        if backend == "torchvision" and num_workers == 0:
            warnings.warn("data.augmentation_backend=torchvision with data.num_workers=0 "
                          "augments every image in the training process; set data.num_workers "
                          "to the CPU cores you can spare", stacklevel=2)
        self.labelled_share = None if labelled_only else labelled_share
        self.dataset = dataset
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.backend = backend
        self.seed = seed
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.augment: nn.Module = (KorniaAugmentation if backend == "kornia" else
                                   DeviceAugmentation)(pipelines, dataset.mean, dataset.std)
        # The engine's forward as one graph; the module stays the plain one (its buffers move
        # with .to() as before).
        self.make_views = (torch.compile(self.augment, fullgraph=True, mode=compile_mode)
                           if compile_views and backend == "fused" else self.augment)
        self.per_image_views = PerImageViews(pipelines, dataset.mean, dataset.std)
        self.eval_transform = EvalTransform(int(pipelines[0].crop_size), dataset.mean,
                                            dataset.std)
        train = dataset.train
        carved = carve_labels(train.targets, label_fraction, val_fraction, val_labels, split_seed)
        self.labels = carved.counts
        self.val = train.subset(carved.val_index)
        pool_index = carved.pool_index
        pool = train.subset(pool_index)
        true_targets = pool.targets
        pool = pool.with_targets(carved.pool_targets)
        kept = ((pool.targets >= 0).nonzero().flatten() if labelled_only
                else torch.arange(len(pool)))
        self.train = pool.subset(kept) if labelled_only else pool
        self.test = dataset.test
        # Guided batches: each training image's cluster, and its true class for the
        # false-negative diagnostic (labels hidden from training are still known here).
        self.train_clusters = None if clusters is None else clusters[pool_index][kept]
        self.train_true_targets = true_targets[kept]
        self.guided_sampler: GuidedBatchSampler | None = None

    @classmethod
    def from_cfg(cls, cfg: DictConfig, dataset: ImageDataset, labelled_only: bool,
                 clusters: torch.Tensor | None = None) -> FKTDataModule:
        """Builds the datamodule from a validated run cfg (``clusters``: the training split's
        cluster ids for guided batches)."""
        return cls(dataset, parse_pipelines(cfg.augmentations), cfg.optimizer.batch_size,
                   label_fraction=cfg.data.label_fraction, val_fraction=cfg.data.val_fraction,
                   split_seed=cfg.data.split_seed, labelled_only=labelled_only,
                   num_workers=cfg.data.num_workers, labelled_share=cfg.data.labelled_share,
                   backend=cfg.data.augmentation_backend, seed=cfg.seed,
                   pin_memory=cfg.data.pin_memory,
                   persistent_workers=cfg.data.persistent_workers, clusters=clusters,
                   val_labels=cfg.data.val_labels, device_resident=cfg.data.device_resident,
                   compile_views=cfg.performance.compile,
                   compile_mode=cfg.performance.compile_mode)

    @property
    def labelled_train(self) -> ImageSplit:
        """The training images that carry a label."""
        return self.train.subset((self.train.targets >= 0).nonzero().flatten())

    def _rank_and_world_size(self) -> tuple[int, int]:
        """This process's rank and the number of processes (1 outside a distributed trainer)."""
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _loader_options(self) -> dict[str, Any]:
        return {"num_workers": self.num_workers, "pin_memory": self.pin_memory,
                "persistent_workers": self.persistent_workers}

    def _eval_loader(self, split: ImageSplit) -> DataLoader:
        # Every process evaluates the whole split: metrics need no gathering and stay exact.
        batches = BatchSampler(SequentialSampler(range(len(split))), self.batch_size,
                               drop_last=False)
        return DataLoader(IndexedBatches(split), batch_size=None, sampler=batches,
                          **self._loader_options())

    def train_dataloader(self) -> DataLoader:
        rank, world_size = self._rank_and_world_size()
        # Dropping the last partial batch keeps BatchNorm and NT-Xent away from tiny batches,
        # unless the split is smaller than one global batch.
        drop_last = len(self.train) > self.batch_size * world_size
        batches: Sampler
        if self.train_clusters is not None:
            _warn_if_unguidable(self.train_clusters, self.batch_size * world_size, drop_last)
            self.guided_sampler = GuidedBatchSampler(
                self.train_clusters, self.batch_size, drop_last=drop_last, seed=self.seed,
                rank=rank, world_size=world_size, true_labels=self.train_true_targets)
            batches = self.guided_sampler
        else:
            batches = TrainBatchSampler(
                self.train.targets, self.batch_size, self.labelled_share, drop_last=drop_last,
                seed=self.seed, rank=rank, world_size=world_size)
        if self.backend == "torchvision":
            return DataLoader(AugmentedImages(self.train, self.per_image_views),
                              batch_sampler=batches, **self._loader_options())
        device = (self.trainer.strategy.root_device if self.trainer is not None
                  else torch.device("cpu"))
        if self._resident_on(device):
            if self.resident_images is None or self.resident_images.device != device:
                self.resident_images = self.train.read(slice(None)).to(device)
            return DataLoader(ResidentBatches(self.train), batch_size=None, sampler=batches,
                              **self._loader_options())
        return DataLoader(IndexedBatches(self.train), batch_size=None, sampler=batches,
                          **self._loader_options())

    def _resident_on(self, device: torch.device) -> bool:
        """Whether the training images live on ``device`` (``data.device_resident``)."""
        if self.backend == "torchvision" or self.device_resident is False:
            return False
        if self.device_resident is True:
            return True
        if device.type != "cuda":
            return False
        free, _ = torch.cuda.mem_get_info(device)
        return len(self.train) * math.prod(self.train.image_shape) < RESIDENT_SHARE * free

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        # No validation split (data.val_labels=none): Lightning skips validation.
        return self._eval_loader(self.val) if len(self.val) else []

    def labelled_train_loader(self) -> DataLoader:
        """The labelled training images, evaluation-transformed (a kNN bank's features)."""
        return self._eval_loader(self.labelled_train)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.test)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Makes views (training) or evaluation inputs on the device the batch now lives on."""
        if self.trainer is not None and self.trainer.training:
            if self.backend == "torchvision":
                return batch  # the loader workers made the views already
            if len(batch) == 2:  # positions of device-resident images (ResidentBatches)
                idx, targets = batch
                assert self.resident_images is not None
                images = self.resident_images[idx.to(self.resident_images.device)]
            else:
                idx, images, targets = batch
            self.augment.to(images.device)
            return idx, self.make_views(images), targets
        _, images, targets = batch
        return self.eval_transform.to(images.device)(images), targets
