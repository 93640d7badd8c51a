"""Checkpoints: the backbone weights of the checkpoints users have (ours and solo-learn's:
Lightning checkpoints whose ``state_dict`` holds ``backbone.*`` keys; plain or torchvision state
dicts), where a trained backbone comes from (:class:`BackboneSource`), and how a run writes its
checkpoints and checks the one it resumes from.
"""

from __future__ import annotations

import errno
import os
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from pytorch_lightning.plugins.io import TorchCheckpointIO
from safetensors.torch import save_file
from torch import nn

from fkt_plugin.backbones import build_backbone
from fkt_plugin.errors import CheckpointError, ConfigError, MissingDependencyError
from fkt_plugin.recipes import compose_recipe
from fkt_plugin.run_dir import RunDirectory


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


@dataclass(frozen=True)
class BackboneSource:
    """Where a trained backbone comes from, with one set of keys for every tool that reads one
    (fkt-eval, fkt-cluster, MV-MR's teacher):

    - ``run_dir``: a run folder of fkt-train (its ``config.yaml`` names backbone and data), with
      ``checkpoint`` a file name in it (``last.ckpt``, ``best.ckpt``) or a path;
    - ``recipe`` (+ ``recipe_overrides``) and ``checkpoint`` a file: a checkpoint trained
      elsewhere (solo-learn, torchvision), described by a training recipe;
    - ``backbone`` (+ ``backbone_kwargs``) and ``checkpoint`` a file: the backbone alone, where
      no data is needed (a teacher).
    """

    run_dir: str | None = None
    checkpoint: str = "last.ckpt"
    recipe: str | None = None
    recipe_overrides: tuple[str, ...] = ()
    backbone: str | None = None
    backbone_kwargs: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def from_settings(cls, settings: Any) -> BackboneSource:
        """The source a tool's settings name (a mapping with some of the keys above)."""
        def get(key: str, default: Any = None) -> Any:
            value = settings.get(key, default)
            return default if value is None else value

        return cls(run_dir=get("run_dir"), checkpoint=str(get("checkpoint", "last.ckpt")),
                   recipe=get("recipe"), recipe_overrides=tuple(get("recipe_overrides", ())),
                   backbone=get("backbone"),
                   backbone_kwargs=tuple(dict(get("backbone_kwargs", {})).items()))

    def run_cfg(self) -> DictConfig | None:
        """The run cfg describing the backbone and data (None for a backbone named alone).

        Raises:
            ConfigError: No source is given.
        """
        if self.run_dir is not None:
            return RunDirectory(self.run_dir).load_config()
        if self.recipe is not None:
            self._checkpoint_file("recipe")
            return compose_recipe(self.recipe, list(self.recipe_overrides))
        if self.backbone is not None:
            return None
        raise ConfigError("no backbone given: give run_dir=<fkt-train run>, or recipe=<training "
                          "recipe> with checkpoint=<file>, or backbone=<name> with "
                          "checkpoint=<file>")

    def _checkpoint_file(self, key: str) -> Path:
        path = Path(self.checkpoint)
        if not path.is_file():
            raise CheckpointError(f"with {key}=, checkpoint must be a file path; {path} does not "
                                  "exist")
        return path

    def checkpoint_file(self) -> Path:
        """The checkpoint file.

        Raises:
            CheckpointError: It does not exist.
        """
        if self.run_dir is not None:
            return RunDirectory(self.run_dir).checkpoint(self.checkpoint)
        return self._checkpoint_file("recipe" if self.recipe is not None else "backbone")

    def build(self, in_channels: int, cfg: DictConfig | None = None) -> nn.Module:
        """The backbone with the checkpoint's weights, in eval mode.

        Args:
            in_channels: Image channels.
            cfg: The run cfg from :meth:`run_cfg` (read again if not given).

        Raises:
            CheckpointError: The checkpoint does not fill the backbone (a key it lacks, a
                shape of another backbone): its random layers would be scored or distilled.
        """
        cfg = cfg if cfg is not None else self.run_cfg()
        name, kwargs = ((str(cfg.backbone.name), dict(cfg.backbone.kwargs or {}))
                        if cfg is not None else (str(self.backbone), dict(self.backbone_kwargs)))
        path = self.checkpoint_file()
        backbone, _ = build_backbone(name, in_channels=in_channels, **kwargs)
        report = load_backbone_weights(backbone, path)
        if report.missing:
            raise CheckpointError(f"checkpoint {path} does not fill the {name} backbone: {report}")
        return backbone.eval()


def on_best_device(module: nn.Module) -> nn.Module:
    """``module`` on a GPU when there is one (feature extraction of a whole dataset)."""
    return module.cuda() if torch.cuda.is_available() else module


FULL_DISK_BYTES = 1 << 20
"""A checkpoint write that fails with less than this free in its folder failed for space."""


class SameFolderCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, writing each checkpoint to a temporary file in its own
    folder, flushed to disk, then renamed over the previous one: a run killed while it writes,
    or a full disk, leaves the previous ``best.ckpt``/``last.ckpt`` whole (a rename within one
    filesystem is atomic; Lightning's own writer may move a file across filesystems)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any,
                        storage_options: Any | None = None) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        try:
            with partial.open("wb") as handle:
                torch.save(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, target)
        except (OSError, RuntimeError) as err:
            # torch's zip writer reports a short write as a RuntimeError ("unexpected pos"):
            # the free space left at the failure tells a full disk from other causes.
            full = (getattr(err, "errno", None) == errno.ENOSPC
                    or shutil.disk_usage(target.parent).free < FULL_DISK_BYTES)
            partial.unlink(missing_ok=True)
            kept = f"; {target} from before is intact" if target.is_file() else ""
            if full:
                raise CheckpointError(f"no space left in {target.parent} to write {target.name}"
                                      f"{kept}: free space there or give another checkpoint.dir"
                                      ) from None
            if isinstance(err, OSError):
                raise CheckpointError(f"could not write {target} ({err}){kept}") from None
            raise
        # What a writer killed before its rename left behind (its pid in the name).
        for stale in target.parent.glob(f".{target.name}.*.partial"):
            stale.unlink(missing_ok=True)


def check_resumable(path: Path) -> None:
    """Checks that a checkpoint a run would resume from is whole (every entry of torch's zip
    archive reads back with its checksum), before Lightning loads it.

    Raises:
        CheckpointError: The file is truncated or not a checkpoint; the message says the way out.
    """
    way_out = (f"copy {path.parent / 'best.ckpt'} over it to resume from the best epoch, or "
               "delete it (or set auto_resume.enabled=false) to start the run over")
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise CheckpointError(f"{path} cannot be resumed from: it is truncated or not a "
                              f"checkpoint ({err}); {way_out}") from None
    if damaged is not None:
        raise CheckpointError(f"{path} cannot be resumed from: its entry {damaged} is damaged; "
                              f"{way_out}")


def export_backbone(checkpoint: str | Path, out: str | Path) -> list[Path]:
    """Writes the backbone tensors of ``checkpoint`` to ``out`` (``torch.save``), and beside it a
    ``.safetensors`` copy (loadable without pickle).

    Returns:
        The files written.
    """
    state = {k: v.contiguous() for k, v in backbone_state_dict(checkpoint).items()}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, out)
    save_file(state, out.with_suffix(".safetensors"))
    return [out, out.with_suffix(".safetensors")]
