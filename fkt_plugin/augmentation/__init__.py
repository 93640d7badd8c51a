"""Device-side augmentation: uint8 batches in, normalised float views out."""

from fkt_plugin.augmentation.pipeline import (
    DeviceAugmentation,
    EvalTransform,
    build_view_transform,
    parse_pipelines,
)

__all__ = ["DeviceAugmentation", "EvalTransform", "build_view_transform", "parse_pipelines"]
