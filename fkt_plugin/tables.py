"""CSV tables whose rows may have different keys: the header is the union of the rows' keys, in
order of first appearance (a resumed run's metrics, a sweep's results)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """The rows of a CSV file with a header, as dicts."""
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def write_rows(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Writes ``rows`` under the union of their keys; a row lacking a key leaves it empty."""
    rows = list(rows)
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="") as handle:
        table = csv.DictWriter(handle, fieldnames=fields)
        table.writeheader()
        table.writerows(rows)
