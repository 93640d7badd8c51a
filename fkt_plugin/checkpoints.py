"""Run directories (their saved config and checkpoint files) and the backbone weights of the
checkpoints users have: ours and solo-learn's (Lightning checkpoints whose ``state_dict`` holds
``backbone.*`` keys), and plain (torchvision) state dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from fkt_plugin.backbones import build_backbone
from fkt_plugin.errors import CheckpointError, ConfigError, MissingDependencyError, MissingPathError


@dataclass
class KeyReport:
    """What loading matched: the keys the backbone wanted but the file lacked, and the reverse."""

    loaded: int
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        def some(keys: list[str]) -> str:
            return ", ".join(keys[:6]) + (f" (+{len(keys) - 6} more)" if len(keys) > 6 else "")

        text = f"{self.loaded} tensors loaded"
        if self.missing:
            text += f"; missing from the file: {some(self.missing)}"
        if self.unexpected:
            text += f"; in the file but not in the backbone: {some(self.unexpected)}"
        return text


def backbone_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The backbone tensors of a checkpoint file, with their ``backbone.`` prefix removed.

    Raises:
        CheckpointError: No file at ``path``, or not a checkpoint or state dict torch can read.
        MissingDependencyError: A ``.safetensors`` file without the safetensors package.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            saved = load_file(path)
        else:
            saved = torch.load(path, map_location="cpu", weights_only=True)
    except ImportError:
        raise MissingDependencyError(f"{path} is a .safetensors file: pip install "
                                     "safetensors") from None
    except Exception as err:  # torch raises several types for files that are not checkpoints
        raise CheckpointError(f"{path} is not a checkpoint torch can read ({err})") from None
    state = saved.get("state_dict", saved) if isinstance(saved, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} holds no state dict (expected tensors by name, or a "
                              "Lightning checkpoint with 'state_dict')")
    prefixed = {k.removeprefix("backbone."): v for k, v in state.items()
                if k.startswith("backbone.")}
    return prefixed or state


def load_backbone_weights(backbone: nn.Module, path: str | Path) -> KeyReport:
    """Copies a checkpoint's backbone weights into ``backbone`` and reports the key differences.

    Raises:
        CheckpointError: No key matches, or a matching key has another shape (a different backbone).
    """
    state = backbone_state_dict(path)
    own = backbone.state_dict()
    shapes = [f"{k}: {tuple(v.shape)} in the file, {tuple(own[k].shape)} in the backbone"
              for k, v in state.items() if k in own and v.shape != own[k].shape]
    if shapes:
        raise CheckpointError(f"{path} was saved from another backbone: {'; '.join(shapes[:3])}")
    if not set(state) & set(own):
        raise CheckpointError(f"no key of {path} matches the backbone (file keys start "
                          f"{', '.join(list(state)[:3])}; backbone keys start "
                          f"{', '.join(list(own)[:3])})")
    result = backbone.load_state_dict(state, strict=False)
    return KeyReport(len(set(state) & set(own)), sorted(result.missing_keys),
                     sorted(result.unexpected_keys))


def backbone_from_checkpoint(cfg: DictConfig, path: str | Path, in_channels: int) -> nn.Module:
    """The backbone a run cfg names, for images of ``in_channels`` channels, with the weights
    of the checkpoint at ``path``, on a GPU when there is one.

    Raises:
        CheckpointError: The checkpoint does not fit the backbone (see
            :func:`load_backbone_weights`).
    """
    backbone, _ = build_backbone(cfg.backbone.name, in_channels=in_channels,
                                 **cfg.backbone.kwargs)
    load_backbone_weights(backbone, path)
    return backbone.cuda() if torch.cuda.is_available() else backbone


# What a run saved before a setting existed did, where that differs from today's default:
# validation labels were on top of the budget, and the best validation epoch was scored.
LEGACY_RUN_SETTINGS = {"data.val_labels": "extra", "selection": "best_val"}


def load_run_config(run_dir: str | Path) -> DictConfig:
    """The saved ``config.yaml`` of a run directory (a setting it predates reads as what the run
    did then, :data:`LEGACY_RUN_SETTINGS`)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise MissingPathError(f"{path} does not exist: is {run_dir} a run directory made by "
                                "fkt-train (<checkpoint.dir>/<name>)?")
    cfg = OmegaConf.load(path)
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{path} is not a mapping of run settings")
    for key, value in LEGACY_RUN_SETTINGS.items():
        if OmegaConf.select(cfg, key, default=None) is None:
            OmegaConf.update(cfg, key, value, force_add=True)
    # Filled from the dataset when the run is prepared; not recipe keys.
    for key in ("num_classes", "num_channels", "ordinal", "class_weights"):
        cfg.data.pop(key, None)
    # A student trained on cluster ids is evaluated (and fine-tuned) on the real labels, and a
    # run whose batches the clusters guided is fine-tuned with uniform batches.
    if cfg.data.get("pseudo_labels") is not None:
        cfg.data.pseudo_labels = None
        if cfg.data.get("batch_sampler") == "guided":
            cfg.data.batch_sampler = "random"
    return cfg


def checkpoint_path(run_dir: str | Path, checkpoint: str) -> Path:
    """A run's checkpoint file by name (``last.ckpt``, ``best.ckpt``), or an explicit path."""
    path = Path(checkpoint)
    if not path.is_file():
        path = Path(run_dir) / "checkpoints" / checkpoint
    if not path.is_file():
        found = sorted(p.name for p in (Path(run_dir) / "checkpoints").glob("*.ckpt"))
        raise CheckpointError(f"checkpoint {checkpoint!r} not found in {run_dir}/checkpoints "
                                f"(found: {', '.join(found) or 'none'}); has the run finished?")
    return path
