"""Helpers every cfg schema uses: filling defaults, finding unknown keys, range checks.

A leaf module: it imports no registry and nothing else of the package but the error family, so
that methods, datasets and augmentations can validate their own settings with it. The schemas
themselves (run, evaluation, comparison) and their defaults live in :mod:`fkt_plugin.args`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from fkt_plugin.errors import ConfigError

# Keys that hydra itself consumes; no schema declares them.
HYDRA_KEYS = frozenset({"hydra", "defaults"})


def fill_defaults(cfg: DictConfig, defaults: Mapping[str, Any], prefix: str = "") -> None:
    """Adds every key of ``defaults`` that ``cfg`` lacks, recursing into nested mappings.

    Raises:
        ConfigError: ``cfg`` holds a scalar where ``defaults`` has a mapping, or something else
            than true or false where the default is a switch (``whiten=flase`` would otherwise
            be a true string).
    """
    with open_dict(cfg):
        for key, value in defaults.items():
            if key not in cfg or cfg[key] is None and isinstance(value, Mapping):
                cfg[key] = OmegaConf.create(dict(value)) if isinstance(value, Mapping) else value
            elif isinstance(value, Mapping):
                if not isinstance(cfg[key], DictConfig):
                    raise ConfigError(f"{prefix}{key} must be a mapping, got {cfg[key]!r}")
                fill_defaults(cfg[key], value, prefix=f"{prefix}{key}.")
            elif isinstance(value, bool) and not isinstance(cfg[key], bool):
                raise ConfigError(f"{prefix}{key}={cfg[key]!r} must be true or false")


def unknown_keys(cfg: DictConfig, defaults: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys of ``cfg`` that ``defaults`` does not define (free-form ``kwargs`` excepted)."""
    found = []
    for key in map(str, cfg):
        if key not in defaults:
            found.append(f"{prefix}{key}")
        elif isinstance(defaults[key], Mapping) and defaults[key] and key != "kwargs":
            found += unknown_keys(cfg[key], defaults[key], prefix=f"{prefix}{key}.")
    return found


def mapping_copy(cfg: Any, name: str = "config") -> DictConfig:
    """A fresh :class:`DictConfig` holding a copy of a mapping (a ``DictConfig`` or a dict).

    Raises:
        ConfigError: ``cfg`` is not a mapping (``name`` says which setting it was).
    """
    created = OmegaConf.create(OmegaConf.to_container(cfg) if isinstance(cfg, DictConfig)
                               else dict(cfg) if isinstance(cfg, Mapping) else cfg)
    if not isinstance(created, DictConfig):
        raise ConfigError(f"{name} must be a mapping of settings, got {cfg!r}")
    return created


def plain_dict(cfg: DictConfig) -> dict[str, Any]:
    """A mapping cfg as a plain dict with its interpolations resolved."""
    container = OmegaConf.to_container(cfg, resolve=True)
    if not isinstance(container, dict):
        raise ConfigError(f"expected a mapping of settings, got {container!r}")
    return {str(k): v for k, v in container.items()}


def unknown_settings(cfg: DictConfig, defaults: Mapping[str, Any],
                     free_form: tuple[str, ...] = ()) -> list[str]:
    """:func:`unknown_keys` of a whole schema, without hydra's own keys and without the keys
    inside the ``free_form`` blocks (validated on their own, or passed through)."""
    return [k for k in unknown_keys(cfg, defaults)
            if k.split(".")[0] not in HYDRA_KEYS and k.split(".")[0] not in free_form]


def require_in_range(
    value: float, name: str, low: float, high: float, *, low_open: bool = False
) -> None:
    """Raises :class:`ConfigError` unless ``value`` lies in [low, high] (or (low, high])."""
    ok = (low < value if low_open else low <= value) and value <= high
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}]"
        raise ConfigError(f"{name}={value!r} is outside {interval}")


def require_positive(value: Any, name: str) -> None:
    """Raises :class:`ConfigError` unless ``value`` is a number > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{name}={value!r} must be > 0")


def require_positive_int(value: Any, name: str) -> None:
    """Raises :class:`ConfigError` unless ``value`` is an int > 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name}={value!r} must be an int > 0")


def require_choice(value: Any, name: str, choices: tuple[str, ...]) -> None:
    """Raises :class:`ConfigError` naming the allowed values unless ``value`` is one."""
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is unknown; use one of {', '.join(choices)}")


def require_auto_or_bool(value: Any, name: str) -> None:
    """Raises :class:`ConfigError` unless ``value`` is ``"auto"``, ``True`` or ``False``."""
    if not (value == "auto" or isinstance(value, bool)):
        raise ConfigError(f"{name}={value!r} is unknown; use one of auto, true, false")


def resolve_per_fraction(value: Any, fraction: float, key: str) -> int:
    """Resolves a per-fraction setting (epochs, steps): an int, or a mapping label fraction →
    int."""
    if isinstance(value, Mapping):
        matches = [v for f, v in value.items() if abs(float(f) - fraction) < 1e-12]
        if not matches:
            raise ConfigError(f"{key} has no entry for label fraction {fraction:g} (it has "
                              f"{', '.join(f'{float(f):g}' for f in value)})")
        value = matches[0]
    if isinstance(value, bool) or not (isinstance(value, int) and value > 0):
        raise ConfigError(f"{key}={value!r} must be an int > 0 or a mapping fraction → int")
    return value
