"""Recipe files: hydra composition of a recipe with overrides, value overrides of a composed
recipe, and the shipped recipes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from fkt_plugin.args.schemas import register_schemas
from fkt_plugin.errors import ConfigError

# The training recipes of a source checkout: recipes/pretrain/<dataset>/<method>.yaml.
PRETRAIN_RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "pretrain"

# The recipes name their schema (fkt_run, fkt_compare) in their defaults lists: hydra finds it
# in its config store once this module, which every tool composing a recipe imports, is loaded.
register_schemas()


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


_ABSENT = object()


def apply_value_overrides(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """A copy of a composed ``cfg`` with ``key=value`` / ``++key=value`` overrides applied as
    hydra applies them (same value grammar; ``key=`` must exist, ``++key=`` adds or sets),
    without composing the recipe again (a sweep of a hundred runs composes each arm once).

    Raises:
        ConfigError: An override is a config-group choice, a deletion, or sets an absent key
            without ``++``.
    """
    out = cfg.copy()
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if override.is_delete() or override.package is not None or (
                not override.is_force_add() and not override.is_add()
                and OmegaConf.select(out, key, default=_ABSENT) is _ABSENT):
            raise ConfigError(f"override {override.input_line!r}: only key=value on an existing "
                              "key or ++key=value can be applied to a composed recipe")
        try:
            with open_dict(out):
                OmegaConf.update(out, key, override.value(), merge=False, force_add=True)
        except OmegaConfBaseException as err:  # a value of the wrong type for a typed recipe
            raise ConfigError(f"override {override.input_line!r}: "
                              f"{str(err).splitlines()[0]}") from None
    return out
