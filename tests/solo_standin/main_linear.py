"""Stand-in of solo-learn's main_linear.py: its checks and one batch of each loader; writes what
it saw to standin_run.json in $STANDIN_OUT (default: the working directory)."""

import json
import os

import hydra
from omegaconf import OmegaConf
from solo.args.linear import parse_cfg
from solo.data.classification_dataloader import prepare_data


@hydra.main(version_base="1.2")
def main(cfg):
    OmegaConf.set_struct(cfg, False)
    cfg = parse_cfg(cfg)
    train_loader, val_loader = prepare_data(
        cfg.data.dataset, train_data_path=cfg.data.train_path, val_data_path=cfg.data.val_path,
        data_format=cfg.data.format, batch_size=cfg.optimizer.batch_size,
        num_workers=cfg.data.num_workers, auto_augment=False)
    train_images, train_targets = next(iter(train_loader))
    val_images, val_targets = next(iter(val_loader))
    with open(os.path.join(os.environ.get("STANDIN_OUT", "."), "standin_run.json"), "w") as f:
        json.dump({"num_classes": cfg.data.num_classes, "train": list(train_images.shape),
                   "train_targets": train_targets.tolist(), "val": list(val_images.shape),
                   "val_size": len(val_loader.dataset), "train_size": len(train_loader.dataset)},
                  f)


if __name__ == "__main__":
    main()
