"""Training methods; importing this package registers every method in :data:`METHODS`."""

from fkt_plugin.methods import byol, dae, fkt_joint, mvmr, simclr, supervised  # noqa: F401
from fkt_plugin.methods.base import BaseMethod
from fkt_plugin.methods.registry import METHODS

__all__ = ["METHODS", "BaseMethod"]
