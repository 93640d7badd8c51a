"""``fkt_joint`` as a solo-learn method: solo-learn's ``BaseMethod`` (backbone, online
classifier, optimiser, kNN) with our projection head and :class:`~fkt_plugin.losses.JointLoss`.

solo-learn's ``main_pretrain.py`` admits exactly two large crops for every method but wmse and
mae, so the supervised term cannot have a third, weak view of its own there: the cross-entropy
runs on a large crop (``method_kwargs.supervised_view``: 0 or 1, default 0), i.e. on a SimCLR
view. ``fkt-train`` trains the same objective with ``method_kwargs.supervised_view=0`` and two
views; its own recipes keep the seed's weak third view.
"""

from __future__ import annotations

from typing import Any

from lightly.models.modules.heads import SimCLRProjectionHead
from omegaconf import DictConfig, open_dict

from fkt_plugin.errors import ConfigError
from fkt_plugin.losses import JointLoss
from fkt_plugin.methods.fkt_joint import FKTJoint

# solo-learn has no third large crop for the weak view (see the module docstring).
SOLO_DEFAULTS: dict[str, Any] = {**FKTJoint.default_kwargs, "supervised_view": 0}


def solo_fkt_joint_class(solo_base: Any) -> type:
    """The ``fkt_joint`` class over solo-learn's ``BaseMethod`` (given, since solo-learn is
    imported only when registering)."""

    class SoloFKTJoint(solo_base):
        """fkt_joint inside solo-learn. The classifier is trained by the joint cross-entropy
        through the encoder (solo's detached online loss is only logged)."""

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
                for key, value in SOLO_DEFAULTS.items():
                    cfg.method_kwargs.setdefault(key, value)
            FKTJoint.check_kwargs(cfg.method_kwargs)
            view = cfg.method_kwargs.supervised_view
            if view >= cfg.data.num_large_crops:
                raise ConfigError(
                    f"method_kwargs.supervised_view={view} but the augmentations make "
                    f"{cfg.data.num_large_crops} large crops; solo-learn's main_pretrain.py "
                    "takes exactly two, so use 0 or 1"
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
