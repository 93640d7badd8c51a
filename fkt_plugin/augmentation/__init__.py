"""Augmentation: solo-learn's pipeline schema, built for the device (the view engine, or kornia's
containers for comparison) or per image (torchvision); uint8 images in, normalised float views
out."""

from fkt_plugin.augmentation.engine import DeviceAugmentation, EvalTransform
from fkt_plugin.augmentation.kornia_views import KorniaAugmentation, build_view_transform
from fkt_plugin.augmentation.schema import (
    BACKENDS,
    PIPELINE_DEFAULTS,
    count_views,
    parse_pipelines,
)
from fkt_plugin.augmentation.torchvision_views import PerImageViews, build_torchvision_transform

__all__ = ["BACKENDS", "PIPELINE_DEFAULTS", "DeviceAugmentation", "EvalTransform",
           "KorniaAugmentation", "PerImageViews", "build_torchvision_transform",
           "build_view_transform", "count_views", "parse_pipelines"]
