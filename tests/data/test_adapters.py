"""Dataset adapters on fixtures written at test time in each real format, from real pixels
(scikit-image's bundled photos and retina): decoded pixels must equal the source pixels, labels
must match, and every bad input must give its message."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import fkt_plugin.cli.data
from fkt_plugin.data import load_dataset
from fkt_plugin.data.aptos import circle_crop_then_resize
from fkt_plugin.data.image_cache import decode_files, resize_square
from fkt_plugin.errors import ConfigError, DataFormatError, DatasetNotFoundError
from tests.helpers import (
    INTEL,
    PHOTOS,
    REPO,
    make_aptos,
    make_cifar10,
    make_intel,
    nchw,
    photo,
    retina_photo,
    run_tool,
    write_cifar_batch,
)

# ---------------------------------------------------------------- CIFAR (python pickles)

@pytest.fixture(scope="module")
def cifar_photos() -> list[np.ndarray]:
    return [photo(name, 32) for name in PHOTOS]


@pytest.mark.parametrize("bytes_keys", [True, False], ids=["python2-bytes-keys", "str-keys"])
def test_cifar10_pixels_labels_and_names(tmp_path: Path, cifar_photos, bytes_keys: bool) -> None:
    make_cifar10(tmp_path, cifar_photos, bytes_keys)
    data = load_dataset("cifar10", str(tmp_path))  # the parent of cifar-10-batches-py works
    assert torch.equal(data.train.read(slice(None, 2)), nchw(cifar_photos[:2]))
    assert torch.equal(data.test.read(slice(None)), nchw(cifar_photos[2:]))
    assert data.train.targets.tolist() == [1, 4, 2, 5, 3, 6, 4, 7, 5, 8]
    assert data.class_names[3] == "class3" and data.num_channels == 3


def test_cifar100_fine_labels(tmp_path: Path, cifar_photos) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    write_cifar_batch(folder / "train", cifar_photos[:3], [0, 55, 99], "fine_labels")
    write_cifar_batch(folder / "test", cifar_photos[3:], [42, 7], "fine_labels")
    data = load_dataset("cifar100", str(folder))
    assert data.num_classes == 100 and data.train.targets.tolist() == [0, 55, 99]
    assert torch.equal(data.test.read(slice(None)), nchw(cifar_photos[3:]))


def test_cifar_bad_inputs(tmp_path: Path, cifar_photos) -> None:
    folder = make_cifar10(tmp_path, cifar_photos, bytes_keys=True)
    with pytest.raises(DatasetNotFoundError, match="holds neither the cifar10 batches"):
        load_dataset("cifar10", str(tmp_path / "cifar-10-batches-py" / ".."/ ".." ))
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"labels": [1]}, protocol=2))
    with pytest.raises(DataFormatError, match=r"data_batch_3 lacks the keys data"):
        load_dataset("cifar10", str(folder))
    (folder / "data_batch_3").write_bytes(b"not a pickle at all")
    with pytest.raises(DataFormatError, match="data_batch_3 is not a CIFAR python batch"):
        load_dataset("cifar10", str(folder))
    write_cifar_batch(folder / "data_batch_3", cifar_photos[:1], [10])
    with pytest.raises(DataFormatError, match=r"data_batch_3: label 10 is outside 0..9"):
        load_dataset("cifar10", str(folder))
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        load_dataset("cifar10", str(tmp_path / "nowhere"))


# ---------------------------------------------------------------- STL-10 (binary)

def write_stl_images(path: Path, images: list[np.ndarray]) -> None:
    """STL-10's layout: per image 3 planes, each plane column-major."""
    path.write_bytes(nchw(images).numpy().transpose(0, 1, 3, 2).tobytes())


def make_stl10(root: Path) -> tuple[Path, list[np.ndarray]]:
    folder = root / "stl10_binary"
    folder.mkdir()
    photos = [photo(name, 96) for name in PHOTOS]
    write_stl_images(folder / "train_X.bin", photos[:4])
    (folder / "train_y.bin").write_bytes(bytes([1, 10, 3, 5]))  # labels 1-10
    write_stl_images(folder / "test_X.bin", photos[4:])
    (folder / "test_y.bin").write_bytes(bytes([2]))
    write_stl_images(folder / "unlabeled_X.bin", photos[:2])
    (folder / "fold_indices.txt").write_text("0 2\n1 3\n")
    return folder, photos


def test_stl10_upright_one_based_labels_unlabelled_pool(tmp_path: Path) -> None:
    folder, photos = make_stl10(tmp_path)
    data = load_dataset("stl10", str(tmp_path))
    # Upright and in RGB order: equal to the source photos, not to their transposes.
    assert torch.equal(data.train.read(slice(None, 4)), nchw(photos[:4]))
    assert not torch.equal(data.train.read(slice(None, 1)), nchw(photos[:1]).transpose(2, 3))
    assert data.train.targets.tolist() == [0, 9, 2, 4, -1, -1]
    assert data.test.targets.tolist() == [1] and data.class_names[0] == "airplane"
    fold = load_dataset("stl10", str(folder), fold=1)
    assert fold.train.targets.tolist() == [9, 4, -1, -1]
    assert torch.equal(fold.train.read(0), nchw(photos[1:2])[0])
    with pytest.raises(ConfigError, match=r"data.fold=5 must be an int in 0..1"):
        load_dataset("stl10", str(folder), fold=5)


def test_stl10_bad_inputs(tmp_path: Path) -> None:
    folder, _ = make_stl10(tmp_path)
    with open(folder / "test_X.bin", "ab") as handle:
        handle.write(b"\0" * 100)
    with pytest.raises(DataFormatError, match=r"test_X.bin: 27,748 bytes is not a whole number "
                                              r"of 27,648-byte STL-10 images"):
        load_dataset("stl10", str(folder))
    write_stl_images(folder / "test_X.bin", [photo("astronaut", 96)])
    (folder / "train_y.bin").write_bytes(bytes([0, 10, 3, 5]))
    with pytest.raises(DataFormatError, match=r"train_y.bin: label 0 is outside 1..10"):
        load_dataset("stl10", str(folder))
    (folder / "train_y.bin").unlink()
    with pytest.raises(DatasetNotFoundError, match="holds neither train_X.bin, train_y.bin"):
        load_dataset("stl10", str(folder))


# ---------------------------------------------------------------- Intel (JPEG folders)

def test_intel_pixels_labels_levels_and_unlabelled_pool(tmp_path: Path) -> None:
    root = tmp_path / "intel"
    files = make_intel(root)
    cache = tmp_path / "cache"
    data = load_dataset("intel", str(root), cache_dir=str(cache))
    assert data.class_names == INTEL
    assert data.train.read(slice(None)).shape == (8, 3, 150, 150)  # 6 + off-size + 1 unlabelled
    assert data.train.targets.tolist() == [0, 0, 1, 1, 1, 2, 2, -1]
    # Equal to an independent decoding of the JPEG, and close to the source photo (JPEG is
    # lossy), which a transposed or BGR image would not be.
    first = np.asarray(Image.open(files["seg_train/buildings/0"]))
    assert torch.equal(data.train.read(0), torch.from_numpy(first.transpose(2, 0, 1).copy()))
    source = nchw([photo(PHOTOS[0], 150)])[0].float()
    assert (data.train.read(0).float() - source).abs().mean() < 4
    assert (data.train.read(0).float() - source.flip(0)).abs().mean() > 20
    assert (data.train.read(0).float() - source.transpose(1, 2)).abs().mean() > 20
    assert data.test.targets.tolist() == [0, 1, 2]
    for level in (root / "seg_train", root / "seg_train" / "seg_train"):
        again = load_dataset("intel", str(level), cache_dir=str(cache))
        assert torch.equal(again.train.read(slice(None)), data.train.read(slice(None)))


def test_intel_single_folder_level(tmp_path: Path) -> None:
    make_intel(tmp_path / "intel", doubled=False)
    data = load_dataset("intel", str(tmp_path / "intel"), cache_dir=str(tmp_path / "c"))
    assert data.test.targets.tolist() == [0, 1, 2]


def test_intel_wrong_level_empty_class_and_corrupt_image(tmp_path: Path) -> None:
    root = tmp_path / "intel"
    files = make_intel(root)
    cache = str(tmp_path / "cache")
    with pytest.raises(DatasetNotFoundError, match="expected the folder that holds seg_train/"):
        load_dataset("intel", str(tmp_path), cache_dir=cache)
    bad = files["seg_train/glacier/1"]
    bad.write_bytes(bad.read_bytes()[:200])  # truncated
    with pytest.warns(UserWarning,
                      match=r"intel seg_train: skipped 1 of 7 images .*glacier/21.jpg"):
        data = load_dataset("intel", str(root), cache_dir=cache)
    assert data.train.targets.tolist() == [0, 0, 1, 1, 1, 2, -1]
    with pytest.raises(DataFormatError, match=r"glacier/21.jpg \(file 7 of 7 of intel seg_train\)"
                                              r" cannot be decoded.*data.on_bad_image=skip"):
        load_dataset("intel", str(root), cache_dir=str(tmp_path / "other"),
                     on_bad_image="error")
    for path in (root / "seg_test" / "seg_test" / "forest").iterdir():
        path.unlink()
    with pytest.raises(DataFormatError, match="class folder .*seg_test/forest holds no images"):
        load_dataset("intel", str(root), cache_dir=cache)


def test_the_cache_is_reused_and_rebuilt_when_a_file_changes(tmp_path: Path) -> None:
    files = []
    for i, name in enumerate(PHOTOS[:3]):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(photo(name, 40)).save(files[-1])
    args = {"size": 40, "preprocess": resize_square(40), "preprocess_name": "square",
            "cache_dir": tmp_path / "cache", "name": "t"}
    first = decode_files(files, [0, 1, 2], **args)
    again = decode_files(files, [0, 1, 2], **args)
    assert not first.from_cache and again.from_cache
    assert torch.equal(first.split.read(slice(None)), again.split.read(slice(None)))
    Image.fromarray(photo("rocket", 40)).save(files[1])
    rebuilt = decode_files(files, [0, 1, 2], **args)
    assert not rebuilt.from_cache
    assert torch.equal(rebuilt.split.read(1), nchw([photo("rocket", 40)])[0])


# ---------------------------------------------------------------- APTOS (CSV + PNG)

def test_aptos_circle_crop_holdout_and_kappa_flag(tmp_path: Path) -> None:
    root = tmp_path / "aptos"
    grades = [0, 0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4, 4, 0]
    codes = make_aptos(root, grades)
    data = load_dataset("aptos", str(root), image_size=64, cache_dir=str(tmp_path / "c"),
                        holdout_fraction=0.3, split_seed=1)
    assert data.ordinal and data.num_classes == 5
    assert len(data.train) + len(data.test) == len(grades)
    assert sorted(data.train.targets.tolist() + data.test.targets.tolist()) == sorted(grades)
    assert set(data.test.targets.tolist()) == {0, 1, 2, 3, 4}  # stratified
    # The border crop undoes the padding: the padded photo decodes like the unpadded one.
    crop = circle_crop_then_resize(64)
    padded = Image.open(root / "train_images" / f"{codes[0]}.png")
    plain = Image.fromarray(retina_photo(120))
    diff = np.abs(np.asarray(crop(padded), dtype=int) - np.asarray(crop(plain), dtype=int))
    assert diff.mean() < 1.0


def test_aptos_bad_inputs(tmp_path: Path) -> None:
    root = tmp_path / "aptos"
    codes = make_aptos(root, [0, 1, 2, 3, 4, 0])
    cache = str(tmp_path / "c")
    (root / "train_images" / f"{codes[2]}.png").unlink()
    Image.fromarray(retina_photo(50)).save(root / "train_images" / "ffffffffffff.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_dataset("aptos", str(root), image_size=32, cache_dir=cache,
                            holdout_fraction=0.2)
    text = " ".join(str(w.message) for w in caught)
    assert f"1 id_code(s) of {root / 'train.csv'} have no image" in text and codes[2] in text
    assert "1 image(s) in" in text and "ffffffffffff" in text
    assert len(data.train) + len(data.test) == 5
    with pytest.raises(DataFormatError, match="have no image.*data.on_bad_image=skip"):
        load_dataset("aptos", str(root), image_size=32, cache_dir=cache, on_bad_image="error")
    (root / "train.csv").write_text("id_code,grade\nabc,1\n")
    with pytest.raises(DataFormatError, match=r"lacks the column\(s\) diagnosis \(has id_code, "
                                              r"grade\)"):
        load_dataset("aptos", str(root), image_size=32, cache_dir=cache)
    (root / "train.csv").write_text(f"id_code,diagnosis\n{codes[0]},7\n")
    with pytest.raises(DataFormatError, match=r"train.csv line 2: diagnosis '7' is not a grade"):
        load_dataset("aptos", str(root), image_size=32, cache_dir=cache)
    with pytest.raises(DatasetNotFoundError, match="expected train.csv and train_images/"):
        load_dataset("aptos", str(tmp_path), image_size=32, cache_dir=cache)


# ---------------------------------------------------------------- folder

def test_folder_tree_unlabelled_pool_and_holdout(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    for c, name in enumerate(("cats", "dogs")):
        (root / name).mkdir(parents=True)
        for k in range(5):
            Image.fromarray(photo(PHOTOS[(c + k) % 5], 48)).save(root / name / f"{k}.png")
    extra = tmp_path / "extra"
    extra.mkdir()
    Image.fromarray(photo("rocket", 60)).save(extra / "u.png")
    data = load_dataset("folder", str(root), unlabelled_path=str(extra), image_size=32,
                        cache_dir=str(tmp_path / "c"), holdout_fraction=0.4)
    assert data.class_names == ("cats", "dogs")
    assert data.test.targets.tolist() == [0, 0, 1, 1]
    assert data.train.targets.tolist() == [0, 0, 0, 1, 1, 1, -1]
    assert data.train.read(slice(None)).shape[1:] == (3, 32, 32)
    with pytest.raises(ConfigError, match="data.image_size is missing"):
        load_dataset("folder", str(root))
    with pytest.raises(DatasetNotFoundError, match="has no class folders.*holds 5 images "
                                                   "directly: point at its parent"):
        load_dataset("folder", str(root / "cats"), image_size=32)


# ---------------------------------------------------------------- recipes

RECIPE_ROOT = REPO / "recipes" / "pretrain"
ADAPTERS = ("cifar10", "cifar100", "stl10", "intel", "aptos", "folder")


@pytest.mark.parametrize("dataset", ADAPTERS)
@pytest.mark.parametrize("method", ["fkt_joint", "simclr", "byol", "supervised", "mvmr", "dae"])
def test_every_dataset_has_a_valid_recipe_per_method(dataset: str, method: str) -> None:
    from hydra import compose, initialize_config_dir

    from fkt_plugin.args.run import validate_run_cfg

    with initialize_config_dir(config_dir=str(RECIPE_ROOT / dataset), version_base="1.3"):
        cfg = validate_run_cfg(compose(config_name=method))
    assert cfg.method == method and cfg.data.dataset == dataset
    crop = {"cifar10": 32, "cifar100": 32, "stl10": 96, "intel": 128}.get(dataset)
    if crop:
        assert all(pipe.crop_size == crop for pipe in cfg.augmentations)
    if dataset == "aptos":  # nothing that changes the colours the grade is read from
        for pipe in cfg.augmentations:
            jitter = pipe.color_jitter
            assert jitter.get("hue", 0) == 0 and jitter.get("saturation", 0) == 0
            assert pipe.grayscale.prob == 0 and pipe.solarization.prob == 0


def test_a_cifar_recipe_trains_on_the_fixture(tmp_path: Path, cifar_photos) -> None:
    from hydra import compose, initialize_config_dir

    from fkt_plugin.runner import train

    make_cifar10(tmp_path / "data", cifar_photos * 4, bytes_keys=True, per_batch=20)
    with initialize_config_dir(config_dir=str(RECIPE_ROOT / "cifar10"), version_base="1.3"):
        cfg = compose(config_name="fkt_joint", overrides=[
            f"data.train_path={tmp_path / 'data'}", f"checkpoint.dir={tmp_path / 'runs'}",
            "max_epochs=1", "optimizer.batch_size=16", "backbone.name=small_cnn",
            "~backbone.kwargs.small_stem", "+backbone.kwargs.width=4", "accelerator=cpu",
            "scheduler.warmup_epochs=0", "data.val_fraction=0.2", "knn_eval.enabled=false"])
    results = train(cfg)
    assert results["dataset"] == "cifar10" and results["train_images"] > 0


# ---------------------------------------------------------------- fkt-data inspect

def test_fkt_data_inspect_reports_counts_skipped_files_and_draws(tmp_path: Path) -> None:
    root = tmp_path / "intel"
    files = make_intel(root)
    bad = files["seg_test/forest/0"]
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    done = run_tool(fkt_plugin.cli.data.main, "inspect", "intel", str(root), "--cache-dir",
                    str(tmp_path / "c"), "--grid", str(tmp_path / "grid.png"), "--views",
                    str(tmp_path / "views.png"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "dataset intel: 3 classes, 3 channel(s), images 150x150 px" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()
            if line.startswith("  ") and len(line.split()) == 3}
    assert rows["buildings"] == ["2", "1"] and rows["forest"] == ["3", "0"]
    assert rows["unlabelled"] == ["1", "0"]
    assert "intel seg_test: skipped 1 of 3 images" in out and str(bad) in out
    for picture in ("grid.png", "views.png"):
        assert (tmp_path / picture).stat().st_size > 1000
    unknown = run_tool(fkt_plugin.cli.data.main, "inspect", "imagenet", str(root), cwd=tmp_path)
    assert unknown.returncode == 2
    assert "unknown dataset 'imagenet'; known datasets: aptos, cifar10" in unknown.stderr


class _RunsCode:
    """A pickle payload that, unpickled by ``pickle.load``, calls ``exec`` on code that writes
    a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


def test_a_crafted_cifar_pickle_is_refused_without_running_its_code(tmp_path: Path,
                                                                       cifar_photos) -> None:
    folder = make_cifar10(tmp_path, cifar_photos, bytes_keys=True)
    marker = tmp_path / "code-ran"
    payload = pickle.dumps({b"data": _RunsCode(marker), b"labels": [0]}, protocol=2)
    (folder / "data_batch_2").write_bytes(payload)
    pickle.loads(payload)  # the payload is live: plain pickle runs it
    assert marker.read_text() == "ran"
    marker.unlink()
    with pytest.raises(DataFormatError, match=r"data_batch_2 is not a CIFAR python batch.*"
                                              r"references \S*builtin\S*\.exec.*refused"):
        load_dataset("cifar10", str(folder))
    assert not marker.exists()
