"""Encoders: torchvision ResNets (with a small-image stem option), a small CPU-friendly CNN, the
DAE encoder, and any timm model as ``timm/<model>``.

Every builder returns ``(module, feature_dim)``; the module maps ``(B, C, H, W)`` images to
``(B, feature_dim)`` features, and ``feature_dim`` is read off the built module, never assumed.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn
from torchvision import models

from fkt_plugin.errors import ConfigError, MissingDependencyError, UnknownNameError
from fkt_plugin.registry import Registry

BackboneBuilder = Callable[..., tuple[nn.Module, int]]
BACKBONES: Registry[BackboneBuilder] = Registry("backbone")


def _resnet(
    arch: Callable[..., models.ResNet], in_channels: int, small_stem: bool, zero_init_residual: bool
) -> tuple[nn.Module, int]:
    net = arch(weights=None, zero_init_residual=zero_init_residual)
    if small_stem:
        # For 32-96 px inputs (CIFAR, STL-10): a stride-1 3x3 stem and no max-pool keep the
        # spatial resolution that the 224 px stem would throw away in its first two layers.
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    feature_dim = net.fc.in_features
    net.fc = nn.Identity()
    return net, feature_dim


@BACKBONES.register("resnet18")
def resnet18(
    in_channels: int = 3, small_stem: bool = False, zero_init_residual: bool = False
) -> tuple[nn.Module, int]:
    """ResNet-18 (He et al., 2016), 512-d features."""
    return _resnet(models.resnet18, in_channels, small_stem, zero_init_residual)


@BACKBONES.register("resnet50")
def resnet50(
    in_channels: int = 3, small_stem: bool = False, zero_init_residual: bool = False
) -> tuple[nn.Module, int]:
    """ResNet-50 (He et al., 2016), 2048-d features."""
    return _resnet(models.resnet50, in_channels, small_stem, zero_init_residual)


class SmallCNN(nn.Module):
    """Three stages of two 3x3 conv-BN-ReLU blocks (widths w, 2w, 4w), then global average pooling.

    Sized so that joint SSL training of 28-32 px images runs in minutes on two CPU cores
    (width 16: ~0.6 ms per 28 px image for forward and backward there).

    Args:
        in_channels: Image channels (1 for grey).
        width: Channels of the first stage; features are ``4 * width``-dimensional.
    """

    def __init__(self, in_channels: int = 3, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for stage, out_channels in enumerate((width, 2 * width, 4 * width)):
            if stage > 0:
                layers.append(nn.MaxPool2d(2))
            for _ in range(2):
                layers += [
                    nn.Conv2d(channels, out_channels, 3, padding=1, bias=False),
                    nn.BatchNorm2d(out_channels),
                    nn.ReLU(inplace=True),
                ]
                channels = out_channels
        self.features = nn.Sequential(*layers)
        self.num_features = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Maps ``(B, C, H, W)`` images to ``(B, 4 * width)`` features."""
        return self.features(x).mean(dim=(2, 3))


@BACKBONES.register("small_cnn")
def small_cnn(in_channels: int = 3, width: int = 16) -> tuple[nn.Module, int]:
    """:class:`SmallCNN`, ``4 * width``-d features."""
    net = SmallCNN(in_channels, width)
    return net, net.num_features


class DAEEncoder(nn.Module):
    """The encoder of G-SimCLR's denoising autoencoder (Chakraborty et al., 2020): stride-2 3x3
    convolutions with ReLU (32, 64, 128 channels for 32 px images), then average pooling to
    ``latent_size`` x ``latent_size`` cells, flattened: the latent that k-means clusters. The
    pooling scales it to other image sizes (28 px: 4x4 already; 96 px: 12x12 pooled to 4x4).

    Shapes:
        input: ``(B, C, H, W)``; output: ``(B, widths[-1] * latent_size ** 2)``.
    """

    def __init__(self, in_channels: int = 3, widths: tuple[int, ...] = (32, 64, 128),
                 latent_size: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for width in widths:
            layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
            channels = width
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(latent_size), nn.Flatten())
        self.widths = tuple(widths)
        self.latent_size = latent_size
        self.num_features = channels * latent_size ** 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


@BACKBONES.register("dae_encoder")
def dae_encoder(in_channels: int = 3, widths: tuple[int, ...] = (32, 64, 128),
                latent_size: int = 4) -> tuple[nn.Module, int]:
    """:class:`DAEEncoder`, ``widths[-1] * latent_size ** 2``-d latents."""
    net = DAEEncoder(in_channels, tuple(widths), latent_size)
    return net, net.num_features


TIMM_PREFIX = "timm/"
"""``backbone.name=timm/<model>`` builds any model of timm's registry as the encoder."""


def _timm_model(model: str, in_channels: int = 3, pretrained: bool = False,
                **kwargs: Any) -> tuple[nn.Module, int]:
    """A timm model without its classifier (``num_classes=0``: globally pooled features), for
    ``in_channels``-channel images; no weights are downloaded unless ``pretrained=True``.
    ``kwargs`` go to ``timm.create_model`` (e.g. ``img_size`` and ``patch_size`` for a ViT on
    small images)."""
    import timm  # optional: checked by backbone_builder

    net = timm.create_model(model, pretrained=pretrained, num_classes=0, in_chans=in_channels,
                            **kwargs)
    # Every timm model sets num_features, the width of its pooled features (an int attribute,
    # which nn.Module's typing cannot tell from a submodule).
    return net, int(getattr(net, "num_features"))  # noqa: B009


def backbone_builder(name: str) -> BackboneBuilder:
    """The builder of a registered backbone, or of ``timm/<model>``.

    Raises:
        UnknownNameError: ``name`` is not registered, or timm has no such model (the message
            lists the known names, or timm's closest ones).
        MissingDependencyError: A ``timm/`` name without timm installed.
    """
    if not name.startswith(TIMM_PREFIX):
        return BACKBONES[name]
    model = name.removeprefix(TIMM_PREFIX)
    try:
        import timm
    except ImportError:
        raise MissingDependencyError(f"backbone.name={name} needs timm: pip install timm (or "
                                     "fkt-plugin[timm])") from None
    if not timm.is_model(model):
        close = difflib.get_close_matches(model, timm.list_models(), n=5, cutoff=0.6)
        hint = f"; close matches: {', '.join(TIMM_PREFIX + m for m in close)}" if close else ""
        raise UnknownNameError(f"timm has no model {model!r} (backbone.name={name}){hint}")
    return functools.partial(_timm_model, model)


def check_backbone_kwargs(name: str, kwargs: Mapping[str, object]) -> None:
    """Checks ``backbone.kwargs`` against the signature of the backbone's builder (a builder
    that takes ``**kwargs``, as timm's models do, is left to check its own).

    Raises:
        ConfigError: A key the builder does not take; the message lists the ones it does.
    """
    parameters = inspect.signature(backbone_builder(name)).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    accepted = [p for p in parameters if p != "in_channels"]
    unknown = sorted(set(map(str, kwargs)) - set(accepted))
    if unknown:
        raise ConfigError(f"backbone.kwargs.{unknown[0]} is not an argument of backbone "
                          f"{name!r}; it takes: {', '.join(accepted) or 'none'}")


def build_backbone(name: str, in_channels: int, **kwargs: object) -> tuple[nn.Module, int]:
    """Builds a registered backbone (or ``timm/<model>``) for images with ``in_channels``
    channels.

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists the known ones).
        ConfigError: ``kwargs`` holds an argument the backbone does not take.
    """
    check_backbone_kwargs(name, kwargs)
    try:
        return backbone_builder(name)(in_channels=in_channels, **kwargs)
    except TypeError as err:  # a keyword timm's model does not take (checked by timm alone)
        raise ConfigError(f"backbone {name!r}: bad backbone.kwargs {dict(kwargs)}: {err}") from None
