"""``fkt-export``: a checkpoint's backbone as a plain state dict (torchvision's key names)."""

from __future__ import annotations

import argparse

from fkt_plugin.checkpoints import export_backbone
from fkt_plugin.cli.errors import user_errors_exit


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``fkt-export``."""
    parser = argparse.ArgumentParser(
        prog="fkt-export",
        description="Write the backbone of a checkpoint (ours, solo-learn's, or a state dict) as "
                    "a plain state dict. ResNet backbones keep torchvision's key names, so "
                    "torchvision.models.resnet18().load_state_dict(sd, strict=False) loads it "
                    "(only fc.* is missing; a small-image stem has a 3x3 conv1). A .safetensors "
                    "copy is written beside it.",
    )
    parser.add_argument("checkpoint", help="e.g. trained_models/<run>/checkpoints/last.ckpt")
    parser.add_argument("out", help="output file, e.g. backbone.pt")
    args = parser.parse_args(argv)
    with user_errors_exit():
        for path in export_backbone(args.checkpoint, args.out):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
