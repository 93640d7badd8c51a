"""How the command-line tools report a user's mistake: one line naming it, no traceback."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from fkt_plugin.errors import FKTError


@contextmanager
def user_errors_exit() -> Iterator[None]:
    """Turns the errors a user can fix (:class:`~fkt_plugin.errors.FKTError`) into
    ``error: <message>`` on stderr and exit status 2."""
    try:
        yield
    except FKTError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
