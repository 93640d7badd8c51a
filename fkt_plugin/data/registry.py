"""The dataset registry: ``data.dataset`` name → loader returning an :class:`ImageDataset`."""

from __future__ import annotations

from collections.abc import Callable

from fkt_plugin.data.dataset import ImageDataset
from fkt_plugin.registry import Registry

DatasetLoader = Callable[..., ImageDataset]
DATASETS: Registry[DatasetLoader] = Registry("dataset")

