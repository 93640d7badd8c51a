"""The denoising autoencoder of G-SimCLR (Chakraborty et al., "G-SimCLR: Self-Supervised
Contrastive Learning with Guided Projection via Pseudo Labelling", ICDM Workshops 2020): its
latents, clustered by k-means (``fkt-cluster``), give the pseudo-labels that guide SimCLR's
batches. Any checkpoint can guide; this one is the seed's."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

from fkt_plugin.backbones import DAEEncoder
from fkt_plugin.config import require_in_range
from fkt_plugin.errors import ConfigError
from fkt_plugin.methods.base import BaseMethod
from fkt_plugin.methods.registry import METHODS


class DAEDecoder(nn.Module):
    """Mirror of :class:`~fkt_plugin.backbones.DAEEncoder`: the latent unflattened to
    ``(widths[-1], latent_size, latent_size)``, stride-2 transposed convolutions with ReLU back
    through the widths, a 3x3 convolution to the image's channels, resized to the image size.

    Shapes:
        latent: ``(B, widths[-1] * latent_size ** 2)``; output: ``(B, C, *size)``.
    """

    def __init__(self, out_channels: int, widths: tuple[int, ...], latent_size: int) -> None:
        super().__init__()
        self.unflatten = nn.Unflatten(1, (widths[-1], latent_size, latent_size))
        layers: list[nn.Module] = []
        for wide, narrow in zip(widths[::-1], [*widths[::-1][1:], widths[0]], strict=True):
            layers += [nn.ConvTranspose2d(wide, narrow, 4, stride=2, padding=1),
                       nn.ReLU(inplace=True)]
        self.up = nn.Sequential(*layers)
        self.out = nn.Conv2d(widths[0], out_channels, 3, padding=1)

    def forward(self, latent: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        x = self.up(self.unflatten(latent))
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return self.out(x)


@METHODS.register("dae")
class DAE(BaseMethod):
    """A denoising autoencoder on view 0 (the un-augmented image, ``augmentations/plain.yaml``):
    ``MSE(decoder(encoder(x + noise_std * N(0, 1))), x)``, logged as ``train_reconstruction_loss``.
    The backbone must be ``dae_encoder``; its latents are what ``fkt-cluster`` clusters.

    method_kwargs:
        noise_std (float): Standard deviation of the Gaussian input noise, in units of the
            normalised input. Defaults to 0.01 (the seed's).
        supervised_view (int): View that feeds the online classifier. Defaults to 0.
    """

    default_kwargs: ClassVar[dict[str, Any]] = {**BaseMethod.default_kwargs, "noise_std": 0.01}
    ssl_views: ClassVar[int] = 1

    def __init__(self, cfg: DictConfig | dict[str, Any]) -> None:
        super().__init__(cfg)
        if not isinstance(self.backbone, DAEEncoder):
            raise ConfigError(f"method dae needs backbone.name=dae_encoder (its decoder mirrors "
                              f"that encoder), not {self.cfg.backbone.name!r}")
        self.decoder = DAEDecoder(self.cfg.data.num_channels, self.backbone.widths,
                                  self.backbone.latent_size)

    @staticmethod
    def check_kwargs(kwargs: DictConfig) -> None:
        BaseMethod.check_kwargs(kwargs)
        require_in_range(kwargs.noise_std, "method_kwargs.noise_std", 0.0, float("inf"))

    @property
    def learnable_params(self) -> list[dict[str, Any]]:
        return [*super().learnable_params,
                {"name": "decoder", "params": self.decoder.parameters()}]

    def ssl_loss(self, feats: list[torch.Tensor], views: list[torch.Tensor],
                 targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        clean = views[0]
        noisy = clean + self.cfg.method_kwargs.noise_std * torch.randn_like(clean)
        latent = self.backbone(noisy.contiguous(memory_format=self.memory_format))
        loss = F.mse_loss(self.decoder(latent, tuple(clean.shape[-2:])), clean)
        return loss, {"train_reconstruction_loss": loss}
