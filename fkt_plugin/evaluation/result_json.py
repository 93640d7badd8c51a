"""The text of a result file (``results.json``, ``eval/*.json``, a cluster report): JSON indented
for reading, except that a list of numbers stays on one line. A confusion matrix then takes one
line per class instead of one per cell: a 1,000-class matrix (a cluster-transfer student with
k = 1,000) is 3 MB this way and 9 MB with ``json.dumps(indent=2)``."""

from __future__ import annotations

import json
from typing import Any

INDENT = "  "


def result_json(content: Any) -> str:
    """``content`` as JSON text: dicts and lists of containers indented by two spaces per level,
    lists of numbers, strings, booleans or nulls written on one line. ``json.loads`` of the
    text equals ``content`` (with tuples as lists and dict keys as strings, as in ``json``).

    Raises:
        TypeError: A value JSON cannot hold (as ``json.dumps`` raises).
    """
    return _dump(content, 0)


def _dump(content: Any, level: int) -> str:
    inner = INDENT * (level + 1)
    if isinstance(content, dict) and content:
        items = (f"{inner}{json.dumps(_key(key))}: {_dump(value, level + 1)}"
                 for key, value in content.items())
        return "{\n" + ",\n".join(items) + "\n" + INDENT * level + "}"
    if isinstance(content, (list, tuple)) and any(
            isinstance(value, (dict, list, tuple)) for value in content):
        items = (inner + _dump(value, level + 1) for value in content)
        return "[\n" + ",\n".join(items) + "\n" + INDENT * level + "]"
    return json.dumps(content)


def _key(key: Any) -> str:
    """A dict key as ``json`` writes it: a string as it is, a number, boolean or None as JSON."""
    return key if isinstance(key, str) else json.dumps(key)
