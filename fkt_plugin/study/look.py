"""A study's first step: look at the user's data (as ``fkt-data inspect`` does), refuse what
cannot give an honest answer, and pick the recipe family and backbone."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from fkt_plugin.data import LOADER_KEYS, load_dataset
from fkt_plugin.data.inspect import load_with_notes
from fkt_plugin.errors import ConfigError


@dataclass(frozen=True)
class DataFacts:
    """What a study needs to know of the data: classes, labels per class, size."""

    dataset: str
    class_names: list[str]
    labelled: list[int]
    unlabelled: int
    test: int
    image_size: int
    channels: int
    skipped: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """Two lines for the plan: the counts and the image size."""
        return (f"{self.dataset}: {len(self.class_names)} classes, {sum(self.labelled):,} "
                f"labelled and {self.unlabelled:,} unlabelled training images "
                f"(fewest labels: {min(self.labelled):,} of class "
                f"{self.class_names[self.labelled.index(min(self.labelled))]!r}), "
                f"{self.test:,} test images, {self.image_size} px, {self.channels} channel(s)"
                + (f"; {self.skipped} file(s) skipped (fkt-data inspect lists them)"
                   if self.skipped else ""))


def data_overrides(cfg: DictConfig) -> list[str]:
    """The user's ``data.*`` keys as overrides of every run (null keys keep the recipe's)."""
    return [f"data.{key}={value}" for key, value in cfg.data.items() if value is not None]


def look(cfg: DictConfig) -> DataFacts:
    """Loads the user's dataset as the training runs will (decoding into the cache once)."""
    options = {key: cfg.data[key] for key in LOADER_KEYS
               if key in cfg.data and cfg.data[key] is not None}
    dataset, notes = load_with_notes(load_dataset, name=str(cfg.data.dataset), **options)
    targets = dataset.train.targets
    counts = torch.bincount(targets[targets >= 0], minlength=dataset.num_classes)
    return DataFacts(str(cfg.data.dataset), list(dataset.class_names),
                     [int(c) for c in counts], int((targets < 0).sum()), len(dataset.test),
                     int(dataset.train.image_shape[1]), dataset.num_channels, len(notes))


def labelled_at(count: int, fraction: float) -> int:
    """Labelled images a class of ``count`` keeps at a label fraction (as the splits draw
    them: rounded, at least one)."""
    return max(1, round(fraction * count))


def check_labels(facts: DataFacts, fractions: list[float], needed: int) -> None:
    """Refuses a fraction at which a class keeps fewer than ``needed`` labels: its validation
    split inside the budget could not tell arms apart.

    Raises:
        ConfigError: Naming the class, its count and how many it needs.
    """
    for fraction in sorted(fractions):
        for name, count in zip(facts.class_names, facts.labelled, strict=True):
            kept = labelled_at(count, fraction)
            if kept < needed:
                share = (f"{100 * fraction:g}% of its {count:,}" if fraction < 1
                         else "every one it has")
                required = math.ceil((needed - 0.5) / fraction)
                raise ConfigError(
                    f"class {name!r} keeps {kept} labelled image(s) at budget.fractions "
                    f"{fraction:g} ({share}): a validation split inside the label budget needs "
                    f"at least {needed} per class (schedule.min_labels_per_class), so this "
                    f"fraction needs {required:,} labelled images of {name!r}; label more, or "
                    "leave the fraction out of budget.fractions")


def choose_family(cfg: DictConfig, facts: DataFacts) -> DictConfig:
    """The recipe family: the dataset's own, else the first whose ``max_image_size`` holds the
    decoded image size.

    Raises:
        ConfigError: No family fits (the message lists them).
    """
    for family in cfg.families:
        if facts.dataset in family.datasets:
            return family
    for family in cfg.families:
        if not family.datasets and (family.max_image_size is None
                                    or facts.image_size <= family.max_image_size):
            return family
    known = ", ".join(f"{f.name} ({', '.join(f.datasets) or f'<= {f.max_image_size} px'})"
                      for f in cfg.families)
    raise ConfigError(f"no recipe family of the study template fits {facts.dataset} at "
                      f"{facts.image_size} px; families: {known}")


def backbone_overrides(cfg: DictConfig, family: DictConfig) -> tuple[str, list[str]]:
    """The family's backbone for this machine (``backbone=auto``) or the one asked for."""
    choice = str(cfg.backbone)
    if choice == "auto":
        choice = "gpu" if torch.cuda.is_available() else "cpu"
    return choice, [str(o) for o in family[choice]]


def family_folder(cfg: DictConfig, family: DictConfig, template_dir: Path) -> Path:
    """The family's recipe folder (relative paths start at the template's folder)."""
    folder = Path(str(family.recipes))
    folder = folder if folder.is_absolute() else template_dir / folder
    if not folder.is_dir():
        raise ConfigError(f"family {family.name!r}: recipes={folder} is not a folder of "
                          "training recipes")
    return folder.resolve()
