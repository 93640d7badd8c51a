"""Stand-in of solo.args.pretrain."""

from solo.args.common import N_CLASSES, SUPPORTED, dataset_checks, require

_N_CLASSES_PER_DATASET = dict(N_CLASSES)
_SUPPORTED_DATASETS = list(SUPPORTED)


def parse_cfg(cfg):
    cfg = dataset_checks(cfg, _SUPPORTED_DATASETS, _N_CLASSES_PER_DATASET)
    require(cfg, "method", "backbone.name", "augmentations", "checkpoint.dir",
            "checkpoint.enabled")
    if cfg.data.val_path is not None:
        require(cfg, "optimizer.classifier_lr")
    big = cfg.augmentations[0].crop_size
    cfg.data.num_large_crops = sum(p.num_crops for p in cfg.augmentations if p.crop_size == big)
    cfg.data.num_small_crops = sum(p.num_crops for p in cfg.augmentations if p.crop_size != big)
    return cfg
