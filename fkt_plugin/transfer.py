"""Knowledge transfer by clustering (Noroozi et al., CVPR 2018), its first half: a teacher's
features of a dataset → k-means → a pseudo-label file that any student trains on.

The student half is an ordinary training run with ``data.pseudo_labels=<file>`` (any method
with a supervised term, any backbone), evaluated on the real labels by ``fkt-eval``.

Files written (``<out>`` = the ``out`` setting)::

    <out>                    pseudo-labels (:mod:`fkt_plugin.data.pseudo_labels`)
    <out stem>-report.md     settings, teacher, cluster sizes, NMI / ARI / purity, timings
    <out stem>-clusters.png  images of the largest clusters
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, open_dict

from fkt_plugin.args.cluster import validate_cluster_cfg
from fkt_plugin.args.run import validate_run_cfg
from fkt_plugin.augmentation import EvalTransform
from fkt_plugin.checkpoints import BackboneSource, on_best_device
from fkt_plugin.clustering import (
    Projection,
    agreement,
    assign,
    fit_projection,
    kmeans,
    size_summary,
)
from fkt_plugin.data import LOADER_KEYS, ImageDataset, load_dataset
from fkt_plugin.data import pseudo_labels as pseudo_label_files
from fkt_plugin.errors import ConfigError
from fkt_plugin.evaluation.features import extract_features
from fkt_plugin.evaluation.plots import plot_image_grid
from fkt_plugin.evaluation.result_json import result_json


def with_data(cfg: DictConfig, data: DictConfig | dict[str, Any]) -> DictConfig:
    """A copy of a run cfg with some of its data keys replaced, validated."""
    cfg = cfg.copy()
    with open_dict(cfg):
        for key, value in dict(data).items():
            if key == "out":
                continue
            cfg.data[key] = value
        cfg.data.pseudo_labels = None
    return validate_run_cfg(cfg)


def load_data(cfg: DictConfig) -> ImageDataset:
    """The dataset a validated run cfg names."""
    return load_dataset(cfg.data.dataset, **{k: cfg.data[k] for k in LOADER_KEYS})


def dataset_features(backbone: torch.nn.Module, dataset: ImageDataset, cfg: DictConfig,
                     batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(N, D)`` features of a dataset's training and test images (every training image,
    unlabelled ones included, in the adapter's order)."""
    transform = EvalTransform(int(cfg.augmentations[0].crop_size), dataset.mean, dataset.std)
    train = extract_features(backbone, dataset.train, transform, batch_size,
                             desc="teacher features (train)")
    test = extract_features(backbone, dataset.test, transform, batch_size,
                            desc="teacher features (test)")
    return train.numpy(), test.numpy()


def _file_digest(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def cluster(cluster_cfg: DictConfig) -> dict[str, Any]:
    """Runs fkt-cluster: features, projection, k-means, pseudo-label files, report, picture.

    Returns:
        The report's content (also written beside ``out``).
    """
    cluster_cfg = validate_cluster_cfg(cluster_cfg)
    source = BackboneSource.from_settings(cluster_cfg)
    base_cfg, path = source.run_cfg(), source.checkpoint_file()
    if base_cfg is None:
        raise ConfigError("fkt-cluster needs the teacher's data: give run_dir=<fkt-train run>, "
                          "or recipe=<training recipe> with checkpoint=<file>")
    cfg = with_data(base_cfg, cluster_cfg.data)
    started = time.time()
    dataset = load_data(cfg)
    # Checked before the features: on a large dataset they take hours.
    if cluster_cfg.k > len(dataset.train):
        raise ConfigError(f"k={cluster_cfg.k} is larger than the {len(dataset.train)} training "
                          f"images of {cfg.data.dataset}")
    backbone = on_best_device(source.build(dataset.num_channels, cfg))
    train_x, test_x = dataset_features(backbone, dataset, cfg, cluster_cfg.batch_size)
    feature_seconds = time.time() - started
    started = time.time()
    projection = fit_projection(train_x, cluster_cfg.pca_dim, cluster_cfg.whiten,
                                cluster_cfg.l2_normalize, cluster_cfg.seed)
    fitted = kmeans(projection(train_x), cluster_cfg.k, cluster_cfg.restarts,
                    cluster_cfg.iterations, cluster_cfg.seed,
                    spherical=cluster_cfg.l2_normalize, use_gpu=cluster_cfg.use_gpu)
    test_labels, _ = assign(projection(test_x), fitted.centroids)
    cluster_seconds = time.time() - started
    teacher = {"checkpoint": str(path), "sha1": _file_digest(path),
               "run": str(cluster_cfg.run_dir) if cluster_cfg.run_dir else None,
               "backbone": cfg.backbone.name, "feature_dim": int(train_x.shape[1])}
    settings = {k: cluster_cfg[k] for k in ("k", "pca_dim", "whiten", "l2_normalize",
                                            "restarts", "iterations", "seed")}
    arrays = _projection_arrays(projection)
    out = pseudo_label_files.save(
        cluster_cfg.out, fitted.labels, test_labels, fitted.centroids, arrays,
        pseudo_label_files.fingerprint(dataset, cfg.data.dataset), settings, teacher)
    report = {
        "out": str(out), "dataset": cfg.data.dataset, "teacher": teacher, "settings": settings,
        "images": {"train": len(train_x), "test": len(test_x)},
        "inertia": fitted.inertia, "sizes": size_summary(fitted.labels, cluster_cfg.k),
        "agreement": {"train": agreement(fitted.labels, dataset.train.targets.numpy()),
                      "test": agreement(test_labels, dataset.test.targets.numpy())},
        "seconds": {"features": round(feature_seconds, 1), "k-means": round(cluster_seconds, 1)},
    }
    if cluster_cfg.assign_to:
        report["assigned"] = _assign_other(cluster_cfg, base_cfg, backbone, projection,
                                           fitted.centroids, arrays, settings, teacher)
    stem = out.with_suffix("")
    report["picture"] = str(_cluster_picture(dataset, fitted.labels, cluster_cfg,
                                             Path(f"{stem}-clusters.png")))
    Path(f"{stem}-report.md").write_text(report_markdown(report))
    Path(f"{stem}-report.json").write_text(result_json(report))
    return report


def _projection_arrays(projection: Projection) -> dict[str, np.ndarray]:
    return {"mean": projection.mean, "components": projection.components,
            "scale": projection.scale,
            "l2_normalize": np.array(projection.l2_normalize)}


def _assign_other(cluster_cfg: DictConfig, base_cfg: DictConfig, backbone: torch.nn.Module,
                  projection: Projection, centroids: np.ndarray,
                  arrays: dict[str, np.ndarray], settings: dict[str, Any],
                  teacher: dict[str, Any]) -> dict[str, Any]:
    """Labels a second dataset with the fitted centroids; its own pseudo-label file."""
    cfg = with_data(base_cfg, cluster_cfg.assign_to)
    dataset = load_data(cfg)
    train_x, test_x = dataset_features(backbone, dataset, cfg, cluster_cfg.batch_size)
    train_labels, _ = assign(projection(train_x), centroids)
    test_labels, _ = assign(projection(test_x), centroids)
    out = pseudo_label_files.save(
        cluster_cfg.assign_to.out, train_labels, test_labels, centroids, arrays,
        pseudo_label_files.fingerprint(dataset, cfg.data.dataset),
        {**settings, "assigned_from": str(cluster_cfg.out)}, teacher)
    return {"out": str(out), "dataset": cfg.data.dataset,
            "sizes": size_summary(train_labels, len(centroids)),
            "agreement": {"train": agreement(train_labels, dataset.train.targets.numpy()),
                          "test": agreement(test_labels, dataset.test.targets.numpy())}}


def _cluster_picture(dataset: ImageDataset, labels: np.ndarray, cluster_cfg: DictConfig,
                     path: Path) -> Path:
    sizes = np.bincount(labels, minlength=cluster_cfg.k)
    shown = np.argsort(-sizes, kind="stable")[:cluster_cfg.picture.clusters]
    per = cluster_cfg.picture.images_per_cluster
    blank = torch.ones(dataset.train.image_shape)  # pads a cluster smaller than a row
    tiles: list[torch.Tensor] = []
    titles: list[str] = []
    for c in shown:
        members = torch.from_numpy(np.flatnonzero(labels == c)[:per])
        images = list(dataset.train.read(members).float() / 255)
        tiles += images + [blank] * (per - len(images))
        titles += [f"cluster {c} ({sizes[c]} images)"] + [""] * (per - 1)
    return plot_image_grid(torch.stack(tiles), titles, path, cols=per)


def report_markdown(report: dict[str, Any]) -> str:
    """The report as markdown."""
    sizes, settings = report["sizes"], report["settings"]
    lines = [f"# fkt-cluster: {report['dataset']}, k = {settings['k']}", "",
             f"Teacher: {report['teacher']['backbone']} from `{report['teacher']['checkpoint']}` "
             f"(sha1 {report['teacher']['sha1']}), {report['teacher']['feature_dim']}-d features.",
             f"Settings: {json.dumps(settings)}.",
             f"Images: {report['images']['train']:,} training (clustered), "
             f"{report['images']['test']:,} test (assigned).",
             f"Cluster sizes: smallest {sizes['smallest']}, median {sizes['median']}, largest "
             f"{sizes['largest']}, empty {sizes['empty']}; inertia {report['inertia']:.4g}.",
             "", "| images | with a true class | NMI | ARI | purity |", "|---|---|---|---|---|"]
    for split, values in report["agreement"].items():
        lines.append(f"| {split} | {values['images']:,} | {values['nmi']:.3f} | "
                     f"{values['ari']:.3f} | {values['purity']:.3f} |")
    if "assigned" in report:
        other = report["assigned"]
        lines += ["", f"Assigned: {other['dataset']} → `{other['out']}`"]
        for split, values in other["agreement"].items():
            lines.append(f"- {split}: NMI {values['nmi']:.3f}, ARI {values['ari']:.3f}, "
                         f"purity {values['purity']:.3f} over {values['images']:,} images")
    lines += ["", f"Seconds: features {report['seconds']['features']}, k-means "
              f"{report['seconds']['k-means']}.", f"Pseudo-labels: `{report['out']}`."]
    return "\n".join(lines) + "\n"
