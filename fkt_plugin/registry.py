"""Name → object registries with one-decorator registration and helpful lookup errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fkt_plugin.errors import UnknownNameError

T = TypeVar("T")


class Registry(dict[str, T]):
    """A ``dict`` of named components (solo-learn keeps its methods in a plain dict too).

    Args:
        kind: What the registry holds, used in error messages (e.g. ``"method"``).

    Example:
        >>> BACKBONES = Registry("backbone")
        >>> @BACKBONES.register("tiny")
        ... def tiny(): ...
        >>> BACKBONES["tiny"] is tiny
        True
        >>> BACKBONES["huge"]
        Traceback (most recent call last):
        ...
        fkt_plugin.errors.UnknownNameError: unknown backbone 'huge'; known backbones: tiny
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def register(self, name: str) -> Callable[[T], T]:
        """Returns a decorator that adds its target under ``name``."""

        def add(obj: T) -> T:
            if name in self:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self[name] = obj
            return obj

        return add

    def __missing__(self, name: str) -> T:
        known = ", ".join(sorted(self)) or "(none)"
        raise UnknownNameError(f"unknown {self.kind} {name!r}; known {self.kind}s: {known}")
