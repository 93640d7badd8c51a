"""What the hydra command-line tools share: the recipe folder a run was started from, and the
settings that keep hydra from writing files of its own."""

from __future__ import annotations

import dataclasses
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import OverrideParseException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fkt_plugin.args.schemas import register_schemas
from fkt_plugin.cli.errors import user_errors_exit
from fkt_plugin.errors import ConfigError

# Defaults-list entries and hydra keys for a config that is not a file: no logs, no outputs/.
QUIET_HYDRA = {
    "defaults": ["_self_", {"override hydra/hydra_logging": "disabled"},
                 {"override hydra/job_logging": "disabled"}],
    "hydra": {"output_subdir": None, "run": {"dir": "."}},
}


def store_tool_config(name: str, schema: str) -> None:
    """Stores the config of a tool that takes no recipe file (fkt-eval, fkt-cluster) under
    ``name``: its typed ``schema`` (:data:`fkt_plugin.args.schemas.SCHEMAS`), quiet hydra."""
    register_schemas()
    ConfigStore.instance().store(name=name, node={
        "defaults": [schema, *QUIET_HYDRA["defaults"]], "hydra": QUIET_HYDRA["hydra"]})


# The arguments of the running tool as typed (main_with_help fills it).
_TYPED: list[str] = []


def recipe_folder() -> Path:
    """The folder of the ``--config-path`` recipe (the current directory if there is none)."""
    for source in HydraConfig.get().runtime.config_sources:
        if source.provider == "main" and source.schema == "file":
            return Path(source.path)
    return Path.cwd()


def absolute_config_path(argv: list[str]) -> list[str]:
    """``argv`` with a relative ``--config-path``/``-cp`` made absolute against the working
    directory: hydra would resolve it against the module that defines the application."""
    out = list(argv)
    for i, arg in enumerate(out):
        for flag in ("--config-path", "-cp"):
            if arg == flag and i + 1 < len(out):
                out[i + 1] = str(Path(out[i + 1]).expanduser().resolve())
            elif arg.startswith(f"{flag}="):
                value = arg.split("=", 1)[1]
                out[i] = f"{flag}={Path(value).expanduser().resolve()}"
    return out


def _names_a_recipe(argv: list[str]) -> bool:
    return any(arg in ("--config-name", "-cn") or arg.startswith(("--config-name=", "-cn="))
               for arg in argv)


def shipped_recipes(folder: Path) -> str:
    """The recipes under ``folder``, one line per subfolder: ``<folder>: <names>``."""
    lines = []
    for sub in sorted({p.parent for p in folder.rglob("*.yaml")
                       if p.parent.name != "augmentations"}):
        names = ", ".join(sorted(p.stem for p in sub.glob("*.yaml")))
        lines.append(f"  {sub.relative_to(folder.parent.parent)}: {names}")
    return "\n".join(lines)


_ABSENT = object()


def _field_type(schema: type, key: str) -> Any:
    """The declared type of a dotted key of a schema dataclass (None: not a typed field)."""
    kind: Any = schema
    for part in key.split("."):
        if not dataclasses.is_dataclass(kind):
            return None
        kind = typing.get_type_hints(kind).get(part)
    return kind


def check_overrides(argv: list[str], schema: type) -> None:
    """Checks the ``key=value`` arguments that set a key of the tool's ``schema`` against the
    key's type before hydra composes (which would stop with exit status 1 and its own text, and
    would read ``yes``, ``no`` or ``1`` as a switch).

    Raises:
        ConfigError: A switch given something else than true or false, or a value of the wrong
            type; the message names the key.
    """
    typed = OmegaConf.structured(schema)
    candidates = [arg for arg in argv if "=" in arg and not arg.startswith("-")
                  and not arg.lstrip("+~").startswith("hydra")]
    try:
        overrides = OverridesParser.create().parse_overrides(candidates)
    except OverrideParseException:
        return  # hydra reports a malformed override itself
    for override in overrides:
        key = override.key_or_group
        kind = _field_type(schema, key)
        # A block chosen by name is a hydra group option (launcher=slurm): hydra checks it.
        if override.is_delete() or override.is_sweep_override() or dataclasses.is_dataclass(
                kind) or OmegaConf.select(typed, key, default=_ABSENT) is _ABSENT:
            continue
        value = override.value()
        if (kind is bool or bool in typing.get_args(kind)) and not isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} must be true or false")
        try:
            OmegaConf.update(typed, key, value, merge=True)
        except OmegaConfBaseException as err:
            raise ConfigError(f"{key}={value!r}: {str(err).splitlines()[0]}") from None


def main_with_help(help_text: str, run: Callable[[], None],
                   recipes: tuple[str, Path] | None = None, schema: type | None = None) -> None:
    """Prints ``help_text`` for ``-h``/``--help`` (hydra's own help knows nothing of our keys),
    else runs the hydra application ``run`` with relative recipe folders resolved against the
    working directory, as solo-learn's users type them.

    Args:
        recipes: For tools that need a recipe: the usage to show and the folder of the shipped
            recipes, listed when the command line names none (hydra would only say that the
            first key is "not in struct").
        schema: The tool's schema (:mod:`fkt_plugin.args.schemas`): command-line values are
            checked against its types first (:func:`check_overrides`).
    """
    argv = sys.argv[1:]
    if {"-h", "--help"} & set(argv):
        print(help_text)
        return
    if recipes is not None and not _names_a_recipe(argv):
        usage, folder = recipes
        shipped = (f"; shipped recipes:\n{shipped_recipes(folder)}" if folder.is_dir()
                   else f" ({folder} is not here: recipes ship with the source checkout)")
        print(f"error: no recipe given: {usage}{shipped}", file=sys.stderr)
        raise SystemExit(2)
    if schema is not None:
        with user_errors_exit():
            check_overrides(argv, schema)
    _TYPED.clear()
    _TYPED.extend(argv)
    sys.argv = [sys.argv[0], *absolute_config_path(argv)]
    run()


def typed_arguments() -> list[str]:
    """The command-line arguments as the user typed them (before the recipe folder was made
    absolute): what a results file records, free of this machine's paths."""
    return list(_TYPED)
