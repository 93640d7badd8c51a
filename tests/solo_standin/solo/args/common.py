"""Checks shared by the stand-in's pretrain and linear argument parsing."""

from omegaconf import OmegaConf

N_CLASSES = {"cifar10": 10, "cifar100": 100, "stl10": 10, "imagenet": 1000, "imagenet100": 100}
SUPPORTED = ["cifar10", "cifar100", "stl10", "imagenet", "imagenet100", "custom"]


def require(cfg, *keys):
    for key in keys:
        assert OmegaConf.select(cfg, key, default="<absent>") != "<absent>", f"{key} is absent"
        assert not OmegaConf.is_missing(cfg, key), f"{key} is missing"


def dataset_checks(cfg, supported, n_classes):
    require(cfg, "data.dataset", "data.train_path", "optimizer.batch_size", "optimizer.lr",
            "devices", "max_epochs")
    assert cfg.data.dataset in supported, f"data.dataset={cfg.data.dataset} not in {supported}"
    cfg.data.val_path = OmegaConf.select(cfg, "data.val_path", default=None)
    cfg.data.format = OmegaConf.select(cfg, "data.format", default="image_folder")
    cfg.data.fraction = OmegaConf.select(cfg, "data.fraction", default=-1)
    cfg.data.num_workers = OmegaConf.select(cfg, "data.num_workers", default=4)
    if cfg.data.dataset in n_classes:
        cfg.data.num_classes = n_classes[cfg.data.dataset]
    else:
        import os

        cfg.data.num_classes = max(1, sum(e.is_dir() for e in os.scandir(cfg.data.train_path)))
    # solo-learn scales the lr by the number of devices: devices must be a list (or a string).
    scale = cfg.optimizer.batch_size * len(cfg.devices) / 256
    cfg.optimizer.lr = cfg.optimizer.lr * scale
    return cfg
