"""Helpers the tests share: fixtures written in the real file formats, recipe loading, and
independent reference computations. Imported by the test modules and by ``conftest.py``."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import sys
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig
from PIL import Image
from skimage import data as skdata
from sklearn.datasets import load_digits

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes" / "pretrain" / "fashion_mnist"


IDX_NAMES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
             "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def write_idx(path: Path, array: np.ndarray) -> None:
    """Writes a gzip'd IDX file: magic 2051 (images) or 2049 (labels), big-endian sizes, bytes."""
    magic = 2051 if array.ndim == 3 else 2049
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", n) for n in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def digits_as_28px() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 real 8x8 digit scans (0-16), upscaled to 28x28 uint8 (0-255)."""
    digits = load_digits()
    images = np.kron(digits.images, np.ones((3, 3)))  # 24x24, each pixel a 3x3 block
    images = np.pad(images, ((0, 0), (2, 2), (2, 2)))
    return (images * 255 / 16).round().astype(np.uint8), digits.target.astype(np.uint8)


def tiny_overrides(data_dir: Path, out_dir: Path) -> list[str]:
    """Overrides that shrink a recipe to seconds on a CPU."""
    return [f"data.train_path={data_dir}", f"checkpoint.dir={out_dir}", "max_epochs=1",
            "optimizer.batch_size=64", "backbone.kwargs.width=4", "++log_every_n_steps=1",
            "scheduler.warmup_epochs=0", "accelerator=cpu"]


@dataclass
class ToolRun:
    """What a command-line tool did: its exit status and what it printed."""

    returncode: int
    stdout: str
    stderr: str


def run_tool(main: Callable[[], None], *args: str, cwd: Path) -> ToolRun:
    """Runs a tool's entry point (e.g. ``fkt_plugin.cli.train.main``) in this process as
    ``<tool> *args`` typed in ``cwd``: the same argument parsing, hydra composition and error
    handling, without a fresh interpreter importing torch for every case (seconds each). The
    tests that start the tools as real processes keep the installed entry points covered."""
    out, err = io.StringIO(), io.StringIO()
    saved_argv, saved_cwd = sys.argv, os.getcwd()
    code = 0
    try:
        os.chdir(cwd)
        sys.argv = ["tool", *args]
        with redirect_stdout(out), redirect_stderr(err):
            main()
    except SystemExit as exit_:
        if isinstance(exit_.code, str):  # sys.exit("message") prints it and exits 1
            err.write(exit_.code)
        code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        # hydra keeps its application in a global that the next compose() refuses to replace.
        GlobalHydra.instance().clear()
    return ToolRun(code, out.getvalue(), err.getvalue())


def load_recipe(name: str, overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(RECIPES), version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


def nt_xent(z0: torch.Tensor, z1: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent as in the SimCLR paper: each view's positive is its pair, negatives the rest."""
    z = F.normalize(torch.cat([z0, z1]), dim=1)
    n = len(z0)
    sim = (z @ z.T / temperature).fill_diagonal_(float("-inf"))
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(sim, positives)


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b||: float noise gives ~1e-6, a missing or extra loss term gives ~0.1-1."""
    return ((a - b).norm() / b.norm()).item()


def photo(name: str, size: int) -> np.ndarray:
    """A real colour photo from scikit-image, resized to ``size`` x ``size``, HWC uint8."""
    image = Image.fromarray(getattr(skdata, name)()).convert("RGB")
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))


def nchw(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images).transpose(0, 3, 1, 2).copy())


def write_cifar_batch(path: Path, images: list[np.ndarray], labels: list[int],
                      labels_key: str = "labels", bytes_keys: bool = True) -> None:
    """A CIFAR python batch: rows of 1,024 R, then G, then B values, each plane row-major."""
    rows = np.stack([img.transpose(2, 0, 1).reshape(-1) for img in images])
    batch = {"batch_label": "fixture", labels_key: labels, "data": rows,
             "filenames": [f"img_{i}.png" for i in range(len(images))]}
    if bytes_keys:  # what cPickle wrote under Python 2
        batch = {k.encode(): v for k, v in batch.items()}
    path.write_bytes(pickle.dumps(batch, protocol=2))


def make_cifar10(root: Path, photos: list[np.ndarray], bytes_keys: bool,
                 per_batch: int = 2) -> Path:
    """Five training batches of ``per_batch`` images (from the start of ``photos``) and a test
    batch of the last three."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        write_cifar_batch(folder / f"data_batch_{i}", photos[:per_batch],
                          [(i + 3 * j) % 10 for j in range(per_batch)], bytes_keys=bytes_keys)
    write_cifar_batch(folder / "test_batch", photos[-3:], [7, 8, 9], bytes_keys=bytes_keys)
    names = [f"class{i}" for i in range(10)]
    meta = {b"label_names" if bytes_keys else "label_names":
            [n.encode() if bytes_keys else n for n in names]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field")
INTEL = ("buildings", "forest", "glacier")


def make_intel(root: Path, doubled: bool = True) -> dict[str, Path]:
    """seg_train/seg_train/<class>/, seg_test/seg_test/<class>/, seg_pred/seg_pred/."""
    files = {}
    for split, per_class in (("seg_train", 2), ("seg_test", 1)):
        base = root / split / split if doubled else root / split
        for c, name in enumerate(INTEL):
            (base / name).mkdir(parents=True)
            for k in range(per_class):
                path = base / name / f"{c}{k}.jpg"
                Image.fromarray(photo(PHOTOS[(c + k) % 5], 150)).save(path, quality=95)
                files[f"{split}/{name}/{k}"] = path
    pred = root / "seg_pred" / "seg_pred"
    pred.mkdir(parents=True)
    Image.fromarray(photo("rocket", 150)).save(pred / "9.jpg", quality=95)
    # One off-size image, as in the real data: resized on decoding.
    Image.fromarray(photo("coffee", 150)).resize((150, 113)).save(
        (root / "seg_train" / "seg_train" if doubled else root / "seg_train") / "forest" / "x.jpg",
        quality=95)
    return files


def retina_photo(size: int = 200, border: tuple[int, int, int, int] = (0, 0, 0, 0)) -> np.ndarray:
    """scikit-image's real fundus photo at ``size`` px, with extra black borders (t, b, l, r)."""
    image = np.asarray(Image.fromarray(skdata.retina()).resize((size, size)))
    top, bottom, left, right = border
    return np.pad(image, ((top, bottom), (left, right), (0, 0)))


def make_aptos(root: Path, grades: list[int]) -> list[str]:
    (root / "train_images").mkdir(parents=True)
    codes = [f"{i:012x}" for i in range(len(grades))]
    lines = ["id_code,diagnosis"]
    for i, (code, grade) in enumerate(zip(codes, grades, strict=True)):
        border = (10 + 7 * i, 3, 40, 5 + i)  # dark borders of different widths
        Image.fromarray(retina_photo(120 + 10 * (i % 4), border)).save(
            root / "train_images" / f"{code}.png")
        lines.append(f"{code},{grade}")
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    return codes
