"""``METHODS``: method name → LightningModule class (solo-learn keeps a dict of the same name)."""

from fkt_plugin.registry import Registry

METHODS: Registry[type] = Registry("method")
