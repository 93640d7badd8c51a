"""fkt-plugin inside solo-learn: ``fkt_joint`` in its method registry and the Intel and APTOS
adapters in its dataset lists, so that solo-learn's own, unchanged ``main_pretrain.py`` and
``main_linear.py`` train and evaluate them from a recipe.

solo-learn is installed from its source (its PyPI release, 1.0.2, predates Lightning 2), and its
version string has not changed across incompatible versions, so :func:`register` checks the
features it relies on instead: a ``BaseMethod`` built from one cfg with
``add_and_assert_specific_cfg`` and ``learnable_params``, and Lightning 2.

Without editing solo-learn (the recommended way)::

    python -m fkt_plugin.solo path/to/main_pretrain.py --config-path recipes/solo/pretrain/cifar \\
        --config-name fkt_joint

or one line at the top of a script, before its solo-learn imports::

    import fkt_plugin.solo; fkt_plugin.solo.register()
"""

from __future__ import annotations

import inspect
from typing import Any

from fkt_plugin.errors import MissingDependencyError
from fkt_plugin.solo.datasets import register_datasets
from fkt_plugin.solo.methods import solo_fkt_joint_class

HOW_TO_INSTALL = ("install solo-learn's current code from source: git clone "
                  "https://github.com/vturrisi/solo-learn && pip install \"setuptools<82\" && "
                  "pip install --no-build-isolation ./solo-learn (PyPI's solo-learn 1.0.2 is "
                  "from 2021 and cannot run on Lightning 2)")
# The names solo-learn's scripts import, which registration wraps or extends.
SOLO_NAMES = {
    "solo.args.pretrain": ("parse_cfg", "_SUPPORTED_DATASETS", "_N_CLASSES_PER_DATASET"),
    "solo.args.linear": ("parse_cfg", "_SUPPORTED_DATASETS", "_N_CLASSES_PER_DATASET"),
    "solo.data.pretrain_dataloader": ("prepare_datasets", "build_transform_pipeline"),
    "solo.data.classification_dataloader": ("prepare_data", "prepare_dataloaders"),
}


def _solo_base() -> tuple[Any, dict[str, Any]]:
    try:
        import solo.methods as solo_methods
        from solo.methods.base import BaseMethod
    except ImportError as err:
        raise MissingDependencyError(f"solo-learn is not importable ({err}); {HOW_TO_INSTALL}") \
            from None
    params = list(inspect.signature(BaseMethod.__init__).parameters)
    missing = [name for name in ("add_and_assert_specific_cfg", "learnable_params")
               if not hasattr(BaseMethod, name)]
    if params != ["self", "cfg"] or missing or not isinstance(getattr(solo_methods, "METHODS",
                                                                      None), dict):
        raise MissingDependencyError(
            "this solo-learn is too old: fkt_joint needs a BaseMethod(cfg) with "
            "add_and_assert_specific_cfg and learnable_params, and solo.methods.METHODS "
            f"(found __init__{tuple(params)}, missing {missing or 'nothing'}); {HOW_TO_INSTALL}"
        )
    try:
        import lightning
    except ImportError:
        raise MissingDependencyError(f"solo-learn needs the lightning package; {HOW_TO_INSTALL}") \
            from None
    if int(lightning.__version__.split(".")[0]) < 2:
        raise MissingDependencyError(f"lightning {lightning.__version__} found, 2.x needed")
    return BaseMethod, solo_methods.METHODS


def _check_solo_names() -> None:
    """Raises if solo-learn lacks a name its scripts are expected to import (a different
    ``main_pretrain.py`` contract than the one registration was written against)."""
    import importlib

    absent = []
    for module_name, names in SOLO_NAMES.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            absent.append(f"{module_name} ({err})")
            continue
        absent += [f"{module_name}.{n}" for n in names if not hasattr(module, n)]
    if absent:
        raise MissingDependencyError(
            f"this solo-learn lacks {', '.join(absent)}, which its main_pretrain.py and "
            f"main_linear.py import in the version fkt-plugin supports; {HOW_TO_INSTALL}"
        )


def register() -> type:
    """Adds ``fkt_joint`` to ``solo.methods.METHODS`` and ``intel``/``aptos`` to solo-learn's
    datasets (once) and returns the method's class.

    Raises:
        MissingDependencyError: solo-learn is absent, too old or of another contract; the
            message says what is missing and how to install.
    """
    solo_base, methods = _solo_base()
    _check_solo_names()
    register_datasets()
    if "fkt_joint" not in methods:
        methods["fkt_joint"] = solo_fkt_joint_class(solo_base)
    return methods["fkt_joint"]
