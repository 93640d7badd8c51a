"""Encoders: torchvision ResNets (with a small-image stem option) and a small CPU-friendly CNN.

Every builder returns ``(module, feature_dim)``; the module maps ``(B, C, H, W)`` images to
``(B, feature_dim)`` features, and ``feature_dim`` is read off the built module, never assumed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torchvision import models

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


def build_backbone(name: str, in_channels: int, **kwargs: object) -> tuple[nn.Module, int]:
    """Builds a registered backbone for images with ``in_channels`` channels.

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists the known ones).
        TypeError: ``kwargs`` holds an argument the backbone does not take.
    """
    builder = BACKBONES[name]
    try:
        return builder(in_channels=in_channels, **kwargs)
    except TypeError as err:
        raise TypeError(f"backbone {name!r}: bad backbone.kwargs {kwargs}: {err}") from err
