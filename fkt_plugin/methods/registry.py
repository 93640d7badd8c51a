"""``METHODS``: method name → LightningModule class (solo-learn keeps a dict of the same name)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fkt_plugin.registry import Registry

if TYPE_CHECKING:  # for the annotation only: base.py does not import this module
    from fkt_plugin.methods.base import BaseMethod

METHODS: Registry[type[BaseMethod]] = Registry("method")
