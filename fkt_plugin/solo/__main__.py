"""``python -m fkt_plugin.solo main_pretrain.py|main_linear.py [hydra args]``: registers
fkt-plugin in solo-learn, then runs solo-learn's script unchanged."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import fkt_plugin.solo as solo_package
from fkt_plugin.cli.hydra_app import absolute_config_path
from fkt_plugin.errors import MissingDependencyError
from fkt_plugin.solo import register


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        print(solo_package.__doc__)
        return
    script = Path(sys.argv[1])
    if not script.is_file():
        raise SystemExit(f"error: {script} is not a file: give the path of solo-learn's "
                         "main_pretrain.py or main_linear.py")
    try:
        register()
    except MissingDependencyError as err:
        raise SystemExit(f"error: {err}") from None
    # A relative --config-path names a folder under the working directory (hydra would
    # resolve it against the script's folder, i.e. the solo-learn checkout).
    sys.argv = [str(script), *absolute_config_path(sys.argv[2:])]
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
