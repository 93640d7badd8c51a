"""fkt-plugin: Functional Knowledge Transfer (joint self-supervised + supervised training).

>>> from fkt_plugin import METHODS
>>> sorted(METHODS)
['byol', 'dae', 'fkt_joint', 'mvmr', 'simclr', 'supervised']
"""

from fkt_plugin.methods import METHODS, BaseMethod

__version__ = "0.1.0"

__all__ = ["METHODS", "BaseMethod", "__version__"]
