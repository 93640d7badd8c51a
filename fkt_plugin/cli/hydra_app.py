"""What the hydra command-line tools share: the recipe folder a run was started from, and the
settings that keep hydra from writing files of its own."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from hydra.core.hydra_config import HydraConfig

# Defaults-list entries and hydra keys for a config that is not a file: no logs, no outputs/.
QUIET_HYDRA = {
    "defaults": ["_self_", {"override hydra/hydra_logging": "disabled"},
                 {"override hydra/job_logging": "disabled"}],
    "hydra": {"output_subdir": None, "run": {"dir": "."}},
}


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


def main_with_help(help_text: str, run: Callable[[], None]) -> None:
    """Prints ``help_text`` for ``-h``/``--help`` (hydra's own help knows nothing of our keys),
    else runs the hydra application ``run`` with relative recipe folders resolved against the
    working directory, as solo-learn's users type them."""
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(help_text)
        return
    sys.argv = [sys.argv[0], *absolute_config_path(sys.argv[1:])]
    run()
