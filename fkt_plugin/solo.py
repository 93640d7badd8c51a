"""Registration of ``fkt_joint`` in solo-learn, so that solo-learn's own ``main_pretrain.py``
trains it from a recipe (``method: fkt_joint``).

solo-learn is installed from its source (its PyPI release, 1.0.2, predates Lightning 2), and its
version string has not changed across incompatible versions, so :func:`register` checks the
features it relies on instead: a ``BaseMethod`` built from one cfg with
``add_and_assert_specific_cfg`` and ``learnable_params``, and Lightning 2.

One line in a script that imports solo-learn (e.g. at the top of ``main_pretrain.py``)::

    import fkt_plugin.solo; fkt_plugin.solo.register()

or, without editing solo-learn: ``python -m fkt_plugin.solo path/to/main_pretrain.py
--config-path ... --config-name fkt_joint``.
"""

from __future__ import annotations

import inspect
import runpy
import sys
from typing import Any

from lightly.models.modules.heads import SimCLRProjectionHead
from omegaconf import DictConfig, open_dict

from fkt_plugin.errors import ConfigError, MissingDependencyError
from fkt_plugin.losses import JointLoss
from fkt_plugin.methods.fkt_joint import FKTJoint

HOW_TO_INSTALL = ("install solo-learn's current code from source: git clone "
                  "https://github.com/vturrisi/solo-learn && pip install -e ./solo-learn "
                  "(PyPI's solo-learn 1.0.2 is from 2021 and cannot run on Lightning 2)")


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


def _solo_fkt_joint_class(solo_base: Any) -> type:
    class SoloFKTJoint(solo_base):
        """fkt_joint inside solo-learn: solo's backbone, online classifier, optimiser and kNN;
        our projection head and :class:`~fkt_plugin.losses.JointLoss`. The classifier is trained
        by the joint cross-entropy through the encoder (solo's detached online loss is only
        logged)."""

        def __init__(self, cfg: DictConfig) -> None:
            super().__init__(cfg)
            kwargs = cfg.method_kwargs
            self.projector = SimCLRProjectionHead(self.features_dim, kwargs.proj_hidden_dim,
                                                  kwargs.proj_output_dim)
            self.joint_loss = JointLoss(temperature=kwargs.temperature,
                                        ssl_weight=kwargs.ssl_weight,
                                        sup_weight=kwargs.sup_weight, gather_distributed=True)
            self.supervised_view: int = kwargs.supervised_view

        @staticmethod
        def add_and_assert_specific_cfg(cfg: DictConfig) -> DictConfig:
            cfg = super(SoloFKTJoint, SoloFKTJoint).add_and_assert_specific_cfg(cfg)
            with open_dict(cfg):
                for key, value in FKTJoint.default_kwargs.items():
                    cfg.method_kwargs.setdefault(key, value)
            FKTJoint.check_kwargs(cfg.method_kwargs)
            if cfg.method_kwargs.supervised_view >= cfg.data.num_large_crops:
                raise ConfigError(
                    f"method_kwargs.supervised_view={cfg.method_kwargs.supervised_view} but the "
                    f"augmentations make {cfg.data.num_large_crops} large crops"
                )
            return cfg

        @property
        def learnable_params(self) -> list[dict[str, Any]]:
            return [*super().learnable_params,
                    {"name": "projector", "params": self.projector.parameters()}]

        def forward(self, X: Any) -> dict[str, Any]:  # noqa: N803 - solo-learn's name
            out = super().forward(X)
            return {**out, "z": self.projector(out["feats"])}

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            out = super().training_step(batch, batch_idx)
            logits = self.classifier(out["feats"][self.supervised_view])
            joint = self.joint_loss(out["z"][0], out["z"][1], logits, batch[2])
            self.log_dict({"train_nce_loss": joint.ssl, "train_joint_class_loss": joint.supervised},
                          on_epoch=True, sync_dist=True)
            return joint.loss

    return SoloFKTJoint


def register() -> type:
    """Adds ``fkt_joint`` to ``solo.methods.METHODS`` (once) and returns its class.

    Raises:
        MissingDependencyError: solo-learn is absent or too old; the message says what to install.
    """
    solo_base, methods = _solo_base()
    if "fkt_joint" not in methods:
        methods["fkt_joint"] = _solo_fkt_joint_class(solo_base)
    return methods["fkt_joint"]


def main() -> None:
    """``python -m fkt_plugin.solo main_pretrain.py [hydra args]``: register, then run it."""
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return
    try:
        register()
    except MissingDependencyError as err:
        raise SystemExit(f"error: {err}") from None
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
