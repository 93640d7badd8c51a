"""Splits are index views: carving never copies the images, reads map through the rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from fkt_plugin.augmentation import parse_pipelines
from fkt_plugin.data import FKTDataModule, ImageDataset, ImageSplit
from fkt_plugin.data.dataset import channel_stats


def numbered(count: int) -> torch.Tensor:
    """``(count, 1, 2, 2)`` uint8 images whose pixels all equal their row number."""
    return torch.arange(count, dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()


def test_subsets_share_the_source_and_compose_their_rows() -> None:
    split = ImageSplit(numbered(10), torch.arange(10) % 3)
    first = split.subset(torch.tensor([8, 6, 4, 2]))
    second = first.subset(torch.tensor([3, 0]))
    assert first.source is split.source and second.source is split.source
    assert second.read(slice(None))[:, 0, 0, 0].tolist() == [2, 8]
    assert second.targets.tolist() == [2 % 3, 8 % 3]
    assert first.read(1)[0, 0, 0].item() == 6
    hidden = first.with_targets(torch.full((4,), -1))
    assert hidden.source is split.source and hidden.read(0)[0, 0, 0].item() == 8
    owned = second.materialise()
    assert owned.rows is None and owned.source.data_ptr() != split.source.data_ptr()
    assert torch.equal(owned.read(slice(None)), second.read(slice(None)))


def test_the_datamodule_carves_views_of_a_memory_map(tmp_path: Path) -> None:
    path = tmp_path / "images.npy"
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(200, 1, 2, 2))
    array[:] = (np.arange(200) % 256).reshape(-1, 1, 1, 1)
    array.flush()
    del array
    source = torch.from_numpy(np.load(path, mmap_mode="c"))
    split = ImageSplit(source, torch.arange(200) % 4)
    dataset = ImageDataset(split, split, ("a", "b", "c", "d"), (0.5,), (0.2,))
    pipelines = parse_pipelines(OmegaConf.create([{"crop_size": 2}]))
    # extra: a validation split of all its labels, then the labelled share of the rest.
    dm = FKTDataModule(dataset, pipelines, batch_size=16, label_fraction=0.5, val_fraction=0.1,
                       val_labels="extra")
    for carved in (dm.val, dm.train, dm.labelled_train):
        assert carved.source is source and carved.rows is not None
    # 50 images per class: 5 to validation, round(0.5 * 45) of the other 45 keep their label.
    assert len(dm.val) == 20 and len(dm.train) == 180
    assert len(dm.labelled_train) == 4 * round(0.5 * 45)
    # Every pixel still names its row: the views read the right images.
    pool_rows = dm.train.read(slice(None))[:, 0, 0, 0].long()
    assert torch.equal(pool_rows, dm.train.rows % 256)
    idx, images, targets = next(iter(dm.train_dataloader()))
    assert torch.equal(images[:, 0, 0, 0].long(), dm.train.rows[idx] % 256)


def test_channel_stats_of_a_view_are_those_of_its_images() -> None:
    split = ImageSplit(numbered(10), torch.zeros(10, dtype=torch.int64))
    view = split.subset(torch.tensor([0, 9]))
    mean, std = channel_stats(view)
    assert mean[0] == pytest.approx((0 + 9) / 2 / 255, rel=1e-6)
    assert std[0] == pytest.approx(torch.tensor([0.0] * 4 + [9 / 255] * 4).std().item(), rel=1e-6)
