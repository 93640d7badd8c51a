"""Non-learnable representations φ(x) of an image batch, the "multi-representations" of MV-MR
(Kinakh et al., "MV-MR: multi-views and multi-representations for self-supervised learning and
knowledge distillation", 2023): the learnt embedding of an augmented view is made dependent on
(or, by choice, independent of) each of them, computed from the un-augmented view.

Every representation is a small ``nn.Module`` with the paper's default arguments, registered by
name in :data:`REPRESENTATIONS` (``method_kwargs.representations`` lists the names). They run on
the device, on the whole batch, without gradients, and return ``(B, D_r)`` rows.

Shapes: input ``(B, C, H, W)`` float (normalised images); output ``(B, D_r)`` float.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import kornia.filters
import torch
import torch.nn.functional as F
from torch import nn

from fkt_plugin.checkpoints import BackboneSource
from fkt_plugin.errors import ConfigError, MissingDependencyError
from fkt_plugin.registry import Registry

REPRESENTATIONS: Registry[Callable[..., nn.Module]] = Registry("representation")
"""Representation name → module class; ``REPRESENTATIONS[name](**kwargs)`` builds one."""


@REPRESENTATIONS.register("pixels")
class Pixels(nn.Module):
    """The image itself, average-pooled down to at most ``size`` x ``size`` and flattened.

    Args:
        size: Largest side kept (larger images are average-pooled to it). Defaults to 32.
    """

    def __init__(self, size: int = 32) -> None:
        super().__init__()
        if not (isinstance(size, int) and size >= 1):
            raise ConfigError(f"pixels size={size!r} must be an int >= 1")
        self.size = size

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if max(x.shape[-2:]) > self.size:
            x = F.adaptive_avg_pool2d(x, (min(x.shape[-2], self.size),
                                          min(x.shape[-1], self.size)))
        return x.flatten(1)


@REPRESENTATIONS.register("hog")
class GradientHistogram(nn.Module):
    """HOG-like histograms of gradient orientations: Sobel gradients (kornia) of every channel,
    the unsigned orientation in [0, π) split into ``bins`` bins (each pixel's magnitude shared
    linearly between its two nearest bins), averaged over ``pool`` x ``pool`` cells.

    Pixels beyond the last whole cell are dropped (as average pooling does). Each pixel adds to
    two entries of a ``(cells x bins)`` table by ``scatter_add``, so memory is O(B C H W), not
    O(B C bins H W).

    Args:
        bins: Orientation bins over 180 degrees. Defaults to 24 (the paper's).
        pool: Cell side in pixels. Defaults to 8 (the paper's).

    Shapes:
        output: ``(B, C * bins * (H // pool) * (W // pool))``.
    """

    def __init__(self, bins: int = 24, pool: int = 8) -> None:
        super().__init__()
        for name, value in (("bins", bins), ("pool", pool)):
            if not (isinstance(value, int) and value >= 1):
                raise ConfigError(f"hog {name}={value!r} must be an int >= 1")
        self.bins = bins
        self.pool = pool

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In float32 also under mixed precision: autocast would run the gradient filter in bf16
        # and the histogram would sum bf16 magnitudes into a float32 table.
        with torch.autocast(x.device.type, enabled=False):
            return self._histogram(x.to(torch.promote_types(x.dtype, torch.float32)))

    def _histogram(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        rows, cols = h // self.pool, w // self.pool
        if rows == 0 or cols == 0:
            raise ConfigError(f"hog pool={self.pool} is larger than the {h}x{w} images")
        x = x[..., :rows * self.pool, :cols * self.pool]
        grad = kornia.filters.spatial_gradient(x)  # (B, C, 2, H, W): d/dx, d/dy
        gx, gy = grad[:, :, 0], grad[:, :, 1]
        magnitude = torch.sqrt(gx * gx + gy * gy)
        # Unsigned orientation: a dark-to-light edge and its mirror fall in the same bin.
        position = torch.remainder(torch.atan2(gy, gx), math.pi) / math.pi * self.bins
        low = position.floor()
        upper_share = position - low
        low_bin = low.long() % self.bins
        high_bin = (low_bin + 1) % self.bins
        cell = (torch.arange(rows * self.pool, device=x.device)[:, None] // self.pool * cols
                + torch.arange(cols * self.pool, device=x.device)[None, :] // self.pool)
        cells = rows * cols
        index_low = (low_bin * cells + cell).flatten(2)
        index_high = (high_bin * cells + cell).flatten(2)
        table = torch.zeros(b, c, self.bins * cells, device=x.device, dtype=x.dtype)
        table.scatter_add_(2, index_low, (magnitude * (1 - upper_share)).flatten(2))
        table.scatter_add_(2, index_high, (magnitude * upper_share).flatten(2))
        return (table / self.pool ** 2).flatten(1)


@REPRESENTATIONS.register("local_std")
class LocalStd(nn.Module):
    """The standard deviation of every pixel's ``size`` x ``size`` neighbourhood, per channel
    (borders use the pixels inside the image), flattened.

    Args:
        size: Odd neighbourhood side. Defaults to 3 (the paper's).

    Shapes:
        output: ``(B, C * H * W)``.
    """

    def __init__(self, size: int = 3) -> None:
        super().__init__()
        if not (isinstance(size, int) and size >= 1 and size % 2 == 1):
            raise ConfigError(f"local_std size={size!r} must be an odd int >= 1")
        self.size = size

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def local_mean(v: torch.Tensor) -> torch.Tensor:
            return F.avg_pool2d(v, self.size, stride=1, padding=self.size // 2,
                                count_include_pad=False)

        mean = local_mean(x)
        variance = (local_mean(x * x) - mean * mean).clamp(min=0)
        return torch.sqrt(variance).flatten(1)


@REPRESENTATIONS.register("scattering")
class Scattering(nn.Module):
    """A 2-D wavelet scattering transform (kymatio's ``Scattering2D``; Bruna and Mallat, 2013)
    of every channel, flattened. Built for the image size of the first batch.

    Args:
        J: Number of scales. Defaults to 2 (the paper's).
        L: Orientations per scale. Defaults to 8 (the paper's).

    Raises:
        MissingDependencyError: kymatio is not installed (``pip install fkt-plugin[scattering]``).
    """

    def __init__(self, J: int = 2, L: int = 8) -> None:  # noqa: N803 (kymatio's names)
        super().__init__()
        try:
            # The 2-D frontend itself: kymatio.torch also imports the 3-D transform, which
            # fails under recent SciPy (1.17 has no scipy.special.sph_harm).
            from kymatio.scattering2d.frontend.torch_frontend import (
                ScatteringTorch2D as Scattering2D,
            )
        except ImportError as err:
            raise MissingDependencyError(
                f"the scattering representation needs kymatio ({err}): pip install kymatio (or "
                "fkt-plugin[scattering]), or drop scattering from method_kwargs.representations"
            ) from None
        self._make = Scattering2D
        self.J, self.L = J, L
        # Filters by (image shape, device), kept out of the module's state: they are rebuilt
        # from J and L, and checkpoints keep the same keys before and after the first batch.
        self._filters: dict[tuple[tuple[int, ...], torch.device], nn.Module] = {}

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape[-2:]), x.device)
        if key not in self._filters:
            self._filters[key] = self._make(J=self.J, shape=key[0], L=self.L).to(x.device)
        return self._filters[key](x.contiguous()).flatten(1)


@REPRESENTATIONS.register("teacher")
class TeacherEmbedding(nn.Module):
    """A frozen network's features: MV-MR's knowledge distillation, for any pair of
    architectures (the student never sees the teacher's weights, only the dependence of its
    embedding on the teacher's).

    The teacher is a backbone checkpoint the checkpoint loader reads (ours, solo-learn's, a plain
    or torchvision state dict): either a run directory of ``fkt-train`` (its backbone read from
    its ``config.yaml``) or a file with the backbone named. It stays in eval mode (BatchNorm
    statistics frozen) whatever mode the student is in.

    The keys are :class:`~fkt_plugin.checkpoints.BackboneSource`'s, as fkt-eval's and
    fkt-cluster's.

    Args:
        run_dir: A teacher run directory; ``checkpoint`` is then a file name in it.
        checkpoint: A checkpoint file name in ``run_dir``, or a path.
        recipe: A training recipe naming the backbone, when ``checkpoint`` is a file trained
            elsewhere; ``recipe_overrides`` apply to it.
        recipe_overrides: Hydra overrides of ``recipe``.
        backbone: The backbone name, when ``checkpoint`` is a file and no recipe is given.
        backbone_kwargs: Its keyword arguments.
        in_channels: Image channels.

    Raises:
        ConfigError: No run directory, recipe or backbone is given.
        CheckpointError: The checkpoint does not fill the backbone (names the keys).
    """

    def __init__(self, run_dir: str | None = None, checkpoint: str = "last.ckpt",
                 recipe: str | None = None, recipe_overrides: Sequence[str] = (),
                 backbone: str | None = None, backbone_kwargs: dict[str, Any] | None = None,
                 in_channels: int = 3) -> None:
        super().__init__()
        if run_dir is None and recipe is None and backbone is None:
            raise ConfigError(
                "the teacher representation needs method_kwargs.teacher.run_dir=<teacher run "
                "directory>, or method_kwargs.teacher.checkpoint=<file> with "
                "method_kwargs.teacher.recipe=<training recipe> or "
                f"method_kwargs.teacher.backbone=<name> (got run_dir={run_dir!r}, "
                f"checkpoint={checkpoint!r}, backbone={backbone!r})")
        source = BackboneSource(run_dir=run_dir, checkpoint=checkpoint, recipe=recipe,
                                recipe_overrides=tuple(recipe_overrides), backbone=backbone,
                                backbone_kwargs=tuple((backbone_kwargs or {}).items()))
        # A teacher with random layers would distil noise: build() refuses a checkpoint that
        # does not fill the backbone.
        self.net = source.build(in_channels)
        path = source.checkpoint_file()
        self.net.requires_grad_(False)
        self.net.eval()
        self.source = str(path)

    def train(self, mode: bool = True) -> TeacherEmbedding:
        super().train(mode)
        self.net.eval()
        return self

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten(1)


def build_representation(name: str, **kwargs: Any) -> nn.Module:
    """The representation registered as ``name``, built with ``kwargs``.

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists the known names).
        ConfigError: A keyword argument is unknown or out of range.
    """
    make = REPRESENTATIONS[name]
    try:
        return make(**kwargs)
    except TypeError as err:
        raise ConfigError(f"representation {name!r}: {err}") from None
