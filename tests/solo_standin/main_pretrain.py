"""Stand-in of solo-learn's main_pretrain.py: its checks, one training step, one validation
batch; writes what it saw to standin_run.json in $STANDIN_OUT (default: the working directory)."""

import json
import os

import hydra
import torch
from omegaconf import OmegaConf
from solo.args.pretrain import parse_cfg
from solo.data.classification_dataloader import prepare_data as prepare_data_classification
from solo.data.pretrain_dataloader import (
    FullTransformPipeline,
    NCropAugmentation,
    build_transform_pipeline,
    prepare_dataloader,
    prepare_datasets,
)
from solo.methods import METHODS


@hydra.main(version_base="1.2")
def main(cfg):
    OmegaConf.set_struct(cfg, False)
    cfg = parse_cfg(cfg)
    assert cfg.method in METHODS, f"Choose from {METHODS.keys()}"
    if cfg.data.num_large_crops != 2:
        assert cfg.method in ["wmse", "mae"]
    model = METHODS[cfg.method](cfg)
    pipelines = [build_transform_pipeline(cfg.data.dataset, p) for p in cfg.augmentations]
    transform = FullTransformPipeline([NCropAugmentation(t, p.num_crops)
                                       for t, p in zip(pipelines, cfg.augmentations, strict=True)])
    dataset = prepare_datasets(cfg.data.dataset, transform, train_data_path=cfg.data.train_path,
                               data_format=cfg.data.format, data_fraction=cfg.data.fraction)
    loader = prepare_dataloader(dataset, batch_size=cfg.optimizer.batch_size,
                                num_workers=cfg.data.num_workers)
    batch = next(iter(loader))
    out = model.training_step(batch, 0)
    loss = out if isinstance(out, torch.Tensor) else out["loss"]
    loss.backward()
    _, val_loader = prepare_data_classification(
        cfg.data.dataset, train_data_path=cfg.data.train_path, val_data_path=cfg.data.val_path,
        data_format=cfg.data.format, batch_size=cfg.optimizer.batch_size,
        num_workers=cfg.data.num_workers)
    images, targets = next(iter(val_loader))
    record = {"method": cfg.method, "dataset": cfg.data.dataset, "loss": float(loss),
              "num_classes": cfg.data.num_classes, "pool": len(dataset),
              "crops": [list(x.shape) for x in batch[1]], "targets": batch[2].tolist(),
              "stats": [list(map(list, t.stats)) for t in pipelines],
              "logged": getattr(model, "logged", {}),
              "val_batch": list(images.shape), "val_targets": targets.tolist()}
    with open(os.path.join(os.environ.get("STANDIN_OUT", "."), "standin_run.json"), "w") as f:
        json.dump(record, f)


if __name__ == "__main__":
    main()
