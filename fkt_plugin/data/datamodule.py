"""The datamodule: uint8 tensors in memory, batched by index, made into views on the device."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
)

from fkt_plugin.augmentation import DeviceAugmentation, EvalTransform, parse_pipelines
from fkt_plugin.data.dataset import ImageDataset, ImageSplit
from fkt_plugin.data.samplers import LabelledShareBatchSampler
from fkt_plugin.data.splits import complement, hide_labels, stratified_pick


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
        return index, self.split.images[index], self.split.targets[index]


class FKTDataModule(pl.LightningDataModule):
    """Train / validation / test loaders over an :class:`ImageDataset`.

    The validation split is carved (stratified, seeded) from the training split, with its labels;
    of the rest, all but ``label_fraction`` per class get target -1. Training batches are
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
        num_workers: Loader worker processes (0 is fastest for in-memory tensors).
        labelled_share: If set, every training batch takes this share of its images from the
            labelled ones (:class:`LabelledShareBatchSampler`); None: uniform batches.
    """

    def __init__(self, dataset: ImageDataset, pipelines: Sequence[DictConfig], batch_size: int,
                 label_fraction: float = 1.0, val_fraction: float = 0.1, split_seed: int = 0,
                 labelled_only: bool = False, num_workers: int = 0,
                 labelled_share: float | None = None) -> None:
        super().__init__()
        self.labelled_share = None if labelled_only else labelled_share
        self.dataset = dataset
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.augment = DeviceAugmentation(pipelines, dataset.mean, dataset.std)
        self.eval_transform = EvalTransform(int(pipelines[0].crop_size), dataset.mean,
                                            dataset.std)
        train = dataset.train
        val_index = stratified_pick(train.targets, val_fraction, split_seed, at_least_one=False)
        self.val = train.subset(val_index)
        pool = train.subset(complement(val_index, len(train)))
        pool = ImageSplit(pool.images, hide_labels(pool.targets, label_fraction, split_seed))
        self.train = pool.subset((pool.targets >= 0).nonzero().flatten()) if labelled_only else pool
        self.test = dataset.test

    @classmethod
    def from_cfg(cls, cfg: DictConfig, dataset: ImageDataset,
                 labelled_only: bool) -> FKTDataModule:
        """Builds the datamodule from a validated run cfg."""
        return cls(dataset, parse_pipelines(cfg.augmentations), cfg.optimizer.batch_size,
                   label_fraction=cfg.data.label_fraction, val_fraction=cfg.data.val_fraction,
                   split_seed=cfg.data.split_seed, labelled_only=labelled_only,
                   num_workers=cfg.data.num_workers, labelled_share=cfg.data.labelled_share)

    @property
    def labelled_train(self) -> ImageSplit:
        """The training images that carry a label."""
        return self.train.subset((self.train.targets >= 0).nonzero().flatten())

    def _loader(self, split: ImageSplit, train: bool) -> DataLoader:
        indices = range(len(split))
        sampler = RandomSampler(indices) if train else SequentialSampler(indices)
        # Dropping the last partial batch keeps BatchNorm and NT-Xent away from tiny batches,
        # unless the split is smaller than one batch.
        drop_last = train and len(split) > self.batch_size
        batches: Sampler = BatchSampler(sampler, self.batch_size, drop_last=drop_last)
        if train and self.labelled_share is not None:
            batches = LabelledShareBatchSampler(split.targets, self.batch_size,
                                                self.labelled_share, drop_last=drop_last)
        return DataLoader(IndexedBatches(split), batch_size=None, sampler=batches,
                          num_workers=self.num_workers, pin_memory=torch.cuda.is_available(),
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test, train=False)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Makes views (training) or evaluation inputs on the device the batch now lives on."""
        idx, images, targets = batch
        if self.trainer is not None and self.trainer.training:
            return idx, self.augment.to(images.device)(images), targets
        return self.eval_transform.to(images.device)(images), targets
