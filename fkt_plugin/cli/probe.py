"""``fkt-probe``: linear probe on the frozen backbone of a finished ``fkt-train`` run."""

from __future__ import annotations

import argparse
import json

from fkt_plugin.cli.errors import user_errors_exit


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``fkt-probe``."""
    parser = argparse.ArgumentParser(
        prog="fkt-probe",
        description="Fit a linear probe on frozen features of a finished fkt-train run (its "
                    "labelled training images; weight decay chosen on validation; tested once). "
                    "Writes <run_dir>/linear_probe.json.",
    )
    parser.add_argument("run_dir", help="a run directory, <checkpoint.dir>/<name>")
    parser.add_argument("--checkpoint", default="best.ckpt",
                        help="checkpoint file under run_dir/checkpoints (default: best.ckpt)")
    args = parser.parse_args(argv)
    from fkt_plugin.runner import linear_probe

    with user_errors_exit():
        results = linear_probe(args.run_dir, args.checkpoint)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
