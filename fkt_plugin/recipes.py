"""Recipe files: hydra composition of a recipe with overrides, and the shipped recipes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

# The training recipes of a source checkout: recipes/pretrain/<dataset>/<method>.yaml.
PRETRAIN_RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "pretrain"


def compose_recipe(recipe: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """Composes a recipe file (its ``defaults:`` list, augmentation files) with hydra overrides.

    Works inside a running hydra application too (fkt-eval, fkt-compare): the application's
    global hydra state is set aside for the composition and restored after it.
    """
    recipe = Path(recipe)
    state = GlobalHydra.instance()
    saved = state.hydra if state.is_initialized() else None
    state.clear()
    try:
        with initialize_config_dir(config_dir=str(recipe.resolve().parent), version_base="1.3"):
            return compose(config_name=recipe.stem, overrides=list(overrides))
    finally:
        if saved is not None:
            GlobalHydra.instance().initialize(saved)
