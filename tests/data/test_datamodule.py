"""Fashion-MNIST's IDX files, the splits and the datamodule."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from fkt_plugin.augmentation import parse_pipelines
from fkt_plugin.data import FKTDataModule, load_dataset
from fkt_plugin.data.fashion_mnist import IMAGE_MAGIC, read_idx
from fkt_plugin.data.splits import hide_labels, stratified_pick
from fkt_plugin.errors import ConfigError, DataFormatError
from fkt_plugin.recipes import PRETRAIN_RECIPES, compose_recipe
from tests.helpers import RECIPES, write_idx


def test_decoded_images_and_labels_equal_the_source(fmnist_dir: Path, digits28) -> None:
    images, labels = digits28
    data = load_dataset("fashion_mnist", str(fmnist_dir))
    assert data.train.read(slice(None)).shape == (1400, 1, 28, 28) and data.num_channels == 1
    assert torch.equal(data.train.read(slice(None))[:, 0], torch.from_numpy(images[:1400]))
    assert torch.equal(data.test.targets, torch.from_numpy(labels[1400:]).long())
    assert data.num_classes == 10
    pixels = images[:1400].astype(np.float64) / 255
    assert data.mean[0] == pytest.approx(pixels.mean(), abs=1e-4)


def test_wrong_magic_is_named(tmp_path: Path, digits28) -> None:
    path = tmp_path / "labels.gz"
    write_idx(path, digits28[1])  # a labels file where images are expected
    with pytest.raises(DataFormatError, match="magic number 2049, expected 2051"):
        read_idx(path, IMAGE_MAGIC)


def test_truncated_file_is_named(tmp_path: Path, digits28) -> None:
    full = tmp_path / "full.gz"
    write_idx(full, digits28[0][:10])
    raw = gzip.decompress(full.read_bytes())
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DataFormatError, match="truncated or corrupt"):
        read_idx(cut, IMAGE_MAGIC)


def test_label_outside_the_classes_is_refused(tmp_path: Path, fmnist_dir: Path) -> None:
    for name in fmnist_dir.iterdir():
        (tmp_path / name.name).write_bytes(name.read_bytes())
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.full(397, 12, dtype=np.uint8))
    with pytest.raises(DataFormatError, match="label 12 is outside 0..9"):
        load_dataset("fashion_mnist", str(tmp_path))


def test_stratified_pick_takes_the_share_of_every_class() -> None:
    targets = torch.arange(10).repeat_interleave(torch.arange(10, 110, 10))  # 10, 20, ... 100
    picked = stratified_pick(targets, 0.1, seed=3)
    counts = torch.bincount(targets[picked], minlength=10)
    assert counts.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert torch.equal(picked, stratified_pick(targets, 0.1, seed=3))
    assert not torch.equal(picked, stratified_pick(targets, 0.1, seed=4))


def test_hide_labels_keeps_at_least_one_per_class() -> None:
    targets = torch.arange(5).repeat(20)
    hidden = hide_labels(targets, 0.01, seed=0)
    kept = hidden[hidden >= 0]
    assert sorted(kept.tolist()) == [0, 1, 2, 3, 4]
    assert torch.equal(hidden[hidden >= 0], targets[hidden >= 0])


def _datamodule(fmnist_dir: Path, labelled_only: bool = False,
                **options: object) -> FKTDataModule:
    pipes = parse_pipelines(OmegaConf.load(RECIPES / "augmentations/symmetric_with_weak.yaml"))
    return FKTDataModule(load_dataset("fashion_mnist", str(fmnist_dir)), pipes, batch_size=50,
                         label_fraction=0.1, val_fraction=0.2, split_seed=1,
                         labelled_only=labelled_only, **options)


def test_splits_are_disjoint_and_keep_unlabelled_images(fmnist_dir: Path) -> None:
    dm = _datamodule(fmnist_dir)
    # The budget (default): 10% of each class labelled, a fifth of those (>= 1) validate.
    sizes = torch.bincount(dm.dataset.train.targets).tolist()
    budget = [max(1, round(0.1 * n)) for n in sizes]
    val = [max(1, round(0.2 * b)) for b in budget]
    assert len(dm.val) == sum(val) and (dm.val.targets >= 0).all()
    assert len(dm.val) + len(dm.train) == 1400
    labelled = (dm.train.targets >= 0).sum().item()
    assert labelled == sum(budget) - sum(val)
    assert dm.labels == {"train": labelled, "val": sum(val), "total": sum(budget)}
    extra = _datamodule(fmnist_dir, val_labels="extra")
    assert len(extra.val) == sum(round(0.2 * n) for n in sizes)
    assert extra.labels["total"] > dm.labels["total"]
    train_rows = {bytes(img.numpy()) for img in dm.train.read(slice(None))}
    assert not any(bytes(img.numpy()) in train_rows for img in dm.val.read(slice(None)))
    only = _datamodule(fmnist_dir, labelled_only=True)
    assert len(only.train) == labelled and (only.train.targets >= 0).all()


class _Trainer:
    def __init__(self, training: bool) -> None:
        self.training = training


def test_batches_become_views_on_the_device(fmnist_dir: Path) -> None:
    dm = _datamodule(fmnist_dir)
    idx, images, targets = next(iter(dm.train_dataloader()))
    assert images.dtype == torch.uint8 and images.shape == (50, 1, 28, 28)
    assert torch.equal(images, dm.train.read(idx)) and torch.equal(targets, dm.train.targets[idx])
    dm.trainer = _Trainer(training=True)
    _, views, same_targets = dm.on_after_batch_transfer((idx, images, targets), 0)
    assert len(views) == 3 and all(v.shape == (50, 1, 28, 28) for v in views)
    assert all(v.dtype == torch.float32 for v in views) and same_targets is targets
    dm.trainer = _Trainer(training=False)
    x, y = dm.on_after_batch_transfer((idx, images, targets), 0)
    expected = (images.float() / 255 - dm.dataset.mean[0]) / dm.dataset.std[0]
    assert torch.allclose(x, expected, atol=1e-6) and y is targets


def test_labelled_share_batches_hold_that_share_of_labelled_images() -> None:
    from fkt_plugin.data.samplers import TrainBatchSampler

    targets = torch.full((1000,), -1)
    targets[torch.arange(0, 1000, 100)] = 3  # 1% labelled: 10 images
    sampler = TrainBatchSampler(targets, batch_size=64, labelled_share=0.25)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 1000 // 48
    assert all(len(b) == 64 for b in batches)
    assert all((targets[b[:16]] >= 0).all() for b in batches)
    seen = [i for b in batches for i in b[:16]]
    # Labelled images are cycled evenly: each appears equally often (± one pass).
    counts = torch.bincount(torch.tensor(seen), minlength=1000)[targets >= 0]
    assert counts.max() - counts.min() <= 1
    pool = [i for b in batches for i in b[16:]]
    assert len(set(pool)) == len(pool)  # one pass over the pool, no repeats


@pytest.mark.parametrize("share", [None, 0.25])
def test_processes_split_the_global_batches_of_one_process(share: float | None) -> None:
    from fkt_plugin.data.samplers import TrainBatchSampler

    targets = torch.full((1003,), -1)
    targets[torch.arange(0, 1003, 20)] = 1
    single = list(TrainBatchSampler(targets, 96, share, seed=4))
    ranks = [list(TrainBatchSampler(targets, 32, share, seed=4, rank=r, world_size=3))
             for r in range(3)]
    assert all(len(r) == len(single) for r in ranks)
    for b, whole in enumerate(single):
        parts = [r[b] for r in ranks]
        assert all(len(p) == 32 for p in parts)
        assert sorted(i for p in parts for i in p) == sorted(whole)
        if share is not None:  # each process's batch starts with its 8 labelled images
            assert all(bool((targets[p[:8]] >= 0).all()) for p in parts)


def test_training_batches_depend_on_seed_and_epoch_only() -> None:
    from fkt_plugin.data.samplers import TrainBatchSampler

    targets = torch.zeros(500, dtype=torch.int64)
    first, again, other_seed = (TrainBatchSampler(targets, 50, seed=s) for s in (1, 1, 2))
    torch.manual_seed(0)
    epoch0 = list(first)
    torch.manual_seed(123)  # the global generator plays no part
    assert list(again) == epoch0
    assert list(other_seed) != epoch0
    again.set_epoch(1)
    assert list(again) != epoch0
    assert sorted(i for b in list(again) for i in b) == list(range(500))


def test_labelled_share_is_validated(make_cfg) -> None:
    with pytest.raises(ConfigError, match=r"data.labelled_share=1.5 is outside \(0.0, 1.0\]"):
        make_cfg("fkt_joint", "++data.labelled_share=1.5")


def _first_training_batch(dm: FKTDataModule) -> tuple[torch.Tensor, list[torch.Tensor],
                                                       torch.Tensor]:
    idx, views, targets = next(iter(dm.train_dataloader()))
    if dm.backend != "torchvision":
        dm.trainer = _Trainer(training=True)
        idx, views, targets = dm.on_after_batch_transfer((idx, views, targets), 0)
    return idx, views, targets


def test_every_backend_makes_the_same_batch_layout(fmnist_dir: Path) -> None:
    batches = {}
    for backend in ("fused", "kornia", "torchvision"):
        torch.manual_seed(0)
        batches[backend] = _first_training_batch(
            _datamodule(fmnist_dir, backend=backend, num_workers=2 * (backend == "torchvision"),
                        seed=3))
    (f_idx, f_views, f_targets), (k_idx, k_views, k_targets), (t_idx, t_views, t_targets) = (
        batches.values())
    assert torch.equal(k_idx, t_idx) and torch.equal(k_targets, t_targets)  # same sampler
    assert torch.equal(f_idx, t_idx) and torch.equal(f_targets, t_targets)
    assert ([(v.shape, v.dtype) for v in f_views] == [(v.shape, v.dtype) for v in k_views]
            == [(v.shape, v.dtype) for v in t_views])
    dm = _datamodule(fmnist_dir)
    mean, std = dm.dataset.mean[0], dm.dataset.std[0]
    low, high = -mean / std, (1 - mean) / std
    for views in (f_views, k_views, t_views):
        assert all(low - 1e-4 <= float(v.min()) and float(v.max()) <= high + 1e-4 for v in views)
        assert all(float(v.max()) > 0.5 * high for v in views)  # not squashed into a corner


def test_torchvision_backend_views_are_fixed_by_the_seed(fmnist_dir: Path) -> None:
    import pytorch_lightning as pl

    def views(seed: int) -> list[torch.Tensor]:
        pl.seed_everything(seed, workers=True, verbose=False)
        return _first_training_batch(_datamodule(fmnist_dir, backend="torchvision",
                                                 num_workers=2, seed=seed))[1]

    first, again, other = views(11), views(11), views(12)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], other[0])


def test_unknown_backend_lists_the_known_ones(make_cfg) -> None:
    with pytest.raises(ConfigError, match=r"augmentation_backend='dali' is unknown; use one of "
                                          r"fused, kornia, torchvision"):
        make_cfg("fkt_joint", "++data.augmentation_backend=dali")


def test_device_resident_images_give_the_batches_and_views_of_host_images(
        fmnist_dir: Path) -> None:
    made = {}
    for resident in (True, False):
        dm = _datamodule(fmnist_dir, device_resident=resident, seed=4)
        batch = next(iter(dm.train_dataloader()))
        # Resident: the loader serves positions only; the images are read on the device.
        assert len(batch) == (2 if resident else 3)
        assert (dm.resident_images is not None) == resident
        dm.trainer = _Trainer(training=True)
        torch.manual_seed(5)
        made[resident] = dm.on_after_batch_transfer(batch, 0)
    (idx, views, targets), (host_idx, host_views, host_targets) = made.values()
    assert torch.equal(idx, host_idx) and torch.equal(targets, host_targets)
    assert all(torch.equal(a, b) for a, b in zip(views, host_views, strict=True))


def test_auto_residency_stays_on_the_host_without_a_gpu(fmnist_dir: Path) -> None:
    dm = _datamodule(fmnist_dir)
    assert len(next(iter(dm.train_dataloader()))) == 3 and dm.resident_images is None


@pytest.mark.parametrize(("overrides", "message"), [
    (["data.device_resident=maybe"], r"data.device_resident='maybe' is unknown; use one of "
                                     r"auto, true, false"),
    (["data.device_resident=true", "data.augmentation_backend=torchvision"],
     r"data.augmentation_backend=torchvision makes views in loader workers.*"
     r"data.device_resident=auto"),
])
def test_bad_residency_is_named(make_cfg, overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_cfg("fkt_joint", *overrides)


def test_performance_compile_compiles_the_fused_engine_as_one_graph(make_cfg,
                                                                   fmnist_dir: Path) -> None:
    cfg = make_cfg("fkt_joint", "performance.compile=true")
    dataset = load_dataset("fashion_mnist", str(fmnist_dir))
    fused = FKTDataModule.from_cfg(cfg, dataset, labelled_only=False)
    assert isinstance(fused.make_views, torch._dynamo.eval_frame.OptimizedModule)
    assert fused.make_views._orig_mod is fused.augment
    kornia = FKTDataModule.from_cfg(make_cfg("fkt_joint", "performance.compile=true",
                                             "data.augmentation_backend=kornia"),
                                    dataset, labelled_only=False)
    assert kornia.make_views is kornia.augment  # kornia's containers break graphs


@pytest.mark.parametrize("recipe", sorted(PRETRAIN_RECIPES.glob("*/*.yaml")),
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_recipe_takes_the_speed_keys_as_documented(recipe: Path) -> None:
    # key=value, as README and fkt-train --help write them (no ++): hydra composes them.
    cfg = compose_recipe(recipe, [
        "data.device_resident=true", "performance.compile=true",
        "performance.compile_mode=reduce-overhead", "data.augmentation_backend=kornia"])
    assert cfg.data.device_resident is True and cfg.performance.compile is True
    assert cfg.performance.compile_mode == "reduce-overhead"
