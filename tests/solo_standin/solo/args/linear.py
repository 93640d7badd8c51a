"""Stand-in of solo.args.linear."""

from solo.args.common import N_CLASSES, SUPPORTED, dataset_checks, require

_N_CLASSES_PER_DATASET = dict(N_CLASSES)
_SUPPORTED_DATASETS = list(SUPPORTED)


def parse_cfg(cfg):
    require(cfg, "data.val_path", "pretrained_feature_extractor", "backbone.name",
            "pretrain_method")
    return dataset_checks(cfg, _SUPPORTED_DATASETS, _N_CLASSES_PER_DATASET)
