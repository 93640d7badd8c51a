"""MV-MR (Kinakh et al., "MV-MR: multi-views and multi-representations for self-supervised
learning and knowledge distillation", 2023): the embedding of an augmented view is made
dependent, by distance correlation, on the embedding of the un-augmented view and on
non-learnable representations of the un-augmented image; no negatives, clusters or
stop-gradients. A frozen teacher's features are one more representation, which makes the same
loss a distillation method for any pair of architectures."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from lightly.models.modules.heads import VICRegProjectionHead
from omegaconf import DictConfig, ListConfig

from fkt_plugin.augmentation.schema import parse_pipelines, view_pipelines
from fkt_plugin.config import (
    plain_dict,
    require_choice,
    require_in_range,
    require_positive,
    require_positive_int,
)
from fkt_plugin.errors import ConfigError
from fkt_plugin.losses import distance_correlation, variance_hinge
from fkt_plugin.methods.base import BaseMethod
from fkt_plugin.methods.registry import METHODS
from fkt_plugin.representations import REPRESENTATIONS, build_representation

DEPENDENCE = ("maximise", "minimise")
"""What the representation terms do: the paper maximises the dependence on each
representation (term 1 − dCor); its official code adds +dCor, which minimises it."""

AUGMENTED, ORIGINAL = 0, 1
"""View indices: the augmented view, and the un-augmented one (a pipeline with nothing on)."""


def representation_specs(entries: ListConfig | list[Any], default_weight: float
                         ) -> list[tuple[str, float, dict[str, Any]]]:
    """``(name, weight, kwargs)`` of each entry of ``method_kwargs.representations``: a name,
    or a mapping ``{name: <name>, weight: <float>, <the representation's arguments>}``.

    Raises:
        UnknownNameError: A name is not registered (the message lists the known ones).
        ConfigError: An entry is malformed, a weight negative, or a name repeated.
    """
    specs: list[tuple[str, float, dict[str, Any]]] = []
    for i, entry in enumerate(entries):
        where = f"method_kwargs.representations[{i}]"
        kwargs: dict[str, Any]
        if isinstance(entry, str):
            name, weight, kwargs = entry, default_weight, {}
        elif isinstance(entry, DictConfig | dict) and "name" in entry:
            kwargs = plain_dict(entry) if isinstance(entry, DictConfig) else dict(entry)
            name = str(kwargs.pop("name"))
            weight = kwargs.pop("weight", default_weight)
        else:
            raise ConfigError(f"{where}={entry!r} must be a name ({', '.join(REPRESENTATIONS)}) "
                              "or a mapping with a name (and optionally weight and arguments)")
        REPRESENTATIONS[name]  # noqa: B018 (raises UnknownNameError listing the known names)
        if not (isinstance(weight, int | float) and weight >= 0):
            raise ConfigError(f"{where}.weight={weight!r} must be a number >= 0")
        if name in [s[0] for s in specs]:
            raise ConfigError(f"{where}: representation {name!r} is listed twice")
        specs.append((name, float(weight), kwargs))
    return specs


@METHODS.register("mvmr")
class MVMR(BaseMethod):
    """MV-MR on two views: view 0 augmented (x_aug), view 1 un-augmented (x_orig, a pipeline
    with every augmentation off).

    With z = projector(backbone(x)), the loss is::

        mse_weight * MSE(z_orig, z_aug)
        + var_weight * mean_d ReLU(std_margin - std(z_aug[:, d]))
        + dcor_weight * (1 - dCor(z_orig, z_aug))
        + sum_r weight_r * term_r,   term_r = 1 - dCor(phi_r(x_orig), z_aug)   (maximise)
                                             or dCor(phi_r(x_orig), z_aug)     (minimise)

    Each term is logged on its own (``train_mse_loss``, ``train_var_loss``, ``train_dcor_loss``,
    ``train_rep_<name>_loss``); terms of weight 0 are not computed.

    method_kwargs:
        proj_hidden_dim (int): Projection head hidden width. Defaults to 8192 (the paper's).
        proj_output_dim (int): Projection dimension. Defaults to 8192 (the paper's).
        proj_layers (int): Linear layers of the projection head. Defaults to 3 (the paper's).
        mse_weight (float): Weight of the MSE between the two embeddings. Defaults to 1.
        var_weight (float): Weight of the variance hinge. Defaults to 1.
        std_margin (float): Target standard deviation of each dimension. Defaults to 1.
        dcor_weight (float): Weight of 1 − dCor between the two embeddings. Defaults to 1.
        representations (list): Names in :data:`~fkt_plugin.representations.REPRESENTATIONS`,
            or mappings ``{name, weight, <arguments>}``. Defaults to pixels, hog, local_std.
        representation_weight (float): Weight of a representation term when its entry gives
            none. Defaults to 1.
        representation_dependence (str): ``maximise`` (the paper) or ``minimise`` (the
            official code). Defaults to maximise.
        teacher (dict): For the ``teacher`` representation: ``run_dir`` (a teacher run), or
            ``checkpoint`` (a file) with ``recipe`` (and ``recipe_overrides``) or with
            ``backbone`` (and ``backbone_kwargs``).
        supervised_view (int): View that feeds the online classifier. Defaults to 1, the
            un-augmented view, which is what evaluation feeds the backbone.
    """

    default_kwargs: ClassVar[dict[str, Any]] = {
        **BaseMethod.default_kwargs,
        "supervised_view": ORIGINAL,
        "proj_hidden_dim": 8192,
        "proj_output_dim": 8192,
        "proj_layers": 3,
        "mse_weight": 1.0,
        "var_weight": 1.0,
        "std_margin": 1.0,
        "dcor_weight": 1.0,
        "representations": ["pixels", "hog", "local_std"],
        "representation_weight": 1.0,
        "representation_dependence": "maximise",
        # BackboneSource's keys: a run folder, a recipe + checkpoint, a checkpoint + backbone
        # (recipe_overrides, where a recipe needs them, is added: runs saved before it existed
        # resume unchanged).
        "teacher": {"run_dir": None, "checkpoint": "last.ckpt", "recipe": None,
                    "backbone": None, "backbone_kwargs": {}},
    }

    def __init__(self, cfg: DictConfig | dict[str, Any]) -> None:
        super().__init__(cfg)
        kwargs = self.cfg.method_kwargs
        self.projector = VICRegProjectionHead(self.features_dim, kwargs.proj_hidden_dim,
                                              kwargs.proj_output_dim, kwargs.proj_layers)
        self.maximise = kwargs.representation_dependence == "maximise"
        self.rep_weights: dict[str, float] = {}
        self.representations = torch.nn.ModuleDict()
        for name, weight, rep_kwargs in representation_specs(kwargs.representations,
                                                             kwargs.representation_weight):
            if name == "teacher":
                rep_kwargs = {**plain_dict(kwargs.teacher), **rep_kwargs,
                              "in_channels": self.cfg.data.num_channels}
            self.rep_weights[name] = weight
            self.representations[name] = build_representation(name, **rep_kwargs)

    @classmethod
    def add_and_assert_specific_cfg(cls, cfg: DictConfig) -> DictConfig:
        cfg = super().add_and_assert_specific_cfg(cfg)
        # The distance matrices of a smaller batch say next to nothing about dependence.
        if int(cfg.optimizer.batch_size) < 4:
            raise ConfigError(f"optimizer.batch_size={cfg.optimizer.batch_size} is too small for "
                              "mvmr: distance correlation needs at least 4 images per batch")
        pipe = view_pipelines(parse_pipelines(cfg.augmentations))[ORIGINAL]
        if pipe.rrc.enabled or any(pipe[key].prob > 0 for key in (
                "color_jitter", "grayscale", "gaussian_blur", "solarization", "equalization",
                "horizontal_flip")):
            warnings.warn("mvmr computes its representations from view 1, which MV-MR takes "
                          "un-augmented, but the pipeline that makes it augments (give it "
                          "rrc.enabled: False and every prob 0, as augmentations/mvmr.yaml does)",
                          stacklevel=2)
        return cfg

    @staticmethod
    def check_kwargs(kwargs: DictConfig) -> None:
        BaseMethod.check_kwargs(kwargs)
        for key in ("proj_hidden_dim", "proj_output_dim"):
            require_positive_int(kwargs[key], f"method_kwargs.{key}")
        if not (isinstance(kwargs.proj_layers, int) and kwargs.proj_layers >= 2):
            raise ConfigError(f"method_kwargs.proj_layers={kwargs.proj_layers!r} must be an int "
                              ">= 2")
        for key in ("mse_weight", "var_weight", "dcor_weight", "representation_weight"):
            require_in_range(kwargs[key], f"method_kwargs.{key}", 0.0, float("inf"))
        require_positive(kwargs.std_margin, "method_kwargs.std_margin")
        require_choice(kwargs.representation_dependence,
                       "method_kwargs.representation_dependence", DEPENDENCE)
        if not isinstance(kwargs.representations, ListConfig | list):
            raise ConfigError(f"method_kwargs.representations={kwargs.representations!r} must "
                              f"be a list of names ({', '.join(REPRESENTATIONS)})")
        specs = representation_specs(kwargs.representations, kwargs.representation_weight)
        weights = [kwargs.mse_weight, kwargs.dcor_weight, *(s[1] for s in specs)]
        if not any(w > 0 for w in weights):
            raise ConfigError("every mvmr weight that ties the two views or the representations "
                              "to the embedding is 0 (mse_weight, dcor_weight, representations): "
                              "nothing would be learnt")

    @property
    def learnable_params(self) -> list[dict[str, Any]]:
        return [*super().learnable_params,
                {"name": "projector", "params": self.projector.parameters()}]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = super().forward(x)
        return out | {"z": self.projector(out["feats"])}

    def ssl_loss(self, feats: list[torch.Tensor], views: list[torch.Tensor],
                 targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        kwargs = self.cfg.method_kwargs
        z_aug, z_orig = self.projector(torch.cat(feats)).chunk(2)
        terms: dict[str, tuple[float, torch.Tensor]] = {}
        if kwargs.mse_weight > 0:
            terms["train_mse_loss"] = kwargs.mse_weight, F.mse_loss(z_orig, z_aug)
        if kwargs.var_weight > 0:
            terms["train_var_loss"] = (kwargs.var_weight,
                                       variance_hinge(z_aug, kwargs.std_margin))
        if kwargs.dcor_weight > 0:
            terms["train_dcor_loss"] = (kwargs.dcor_weight,
                                        1 - distance_correlation(z_orig, z_aug))
        original = views[ORIGINAL]
        for name, representation in self.representations.items():
            weight = self.rep_weights[name]
            if weight > 0:
                dependence = distance_correlation(representation(original), z_aug)
                terms[f"train_rep_{name}_loss"] = (weight, 1 - dependence if self.maximise
                                                   else dependence)
        loss = torch.stack([weight * value for weight, value in terms.values()]).sum()
        return loss, {"train_mvmr_loss": loss} | {key: value for key, (_, value) in terms.items()}
