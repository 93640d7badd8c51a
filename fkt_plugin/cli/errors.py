"""How the command-line tools report a user's mistake: one line naming it, no traceback."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from fkt_plugin.config import ConfigError
from fkt_plugin.data.fashion_mnist import IDXFormatError
from fkt_plugin.data.image_cache import DataFormatError
from fkt_plugin.data.registry import DatasetNotFoundError
from fkt_plugin.registry import UnknownNameError

USER_ERRORS: tuple[type[Exception], ...] = (
    ConfigError, UnknownNameError, DatasetNotFoundError, IDXFormatError, DataFormatError,
    FileNotFoundError, FloatingPointError,
)


@contextmanager
def user_errors_exit() -> Iterator[None]:
    """Turns the errors a user can fix into ``error: <message>`` on stderr and exit status 2."""
    try:
        yield
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
