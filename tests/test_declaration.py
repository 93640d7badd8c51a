"""A sweep's pre-registration: declared at its first start, enforced, amended with a reason,
reported, and recorded by every run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

import fkt_plugin.cli.compare
from tests.helpers import run_tool
from tests.test_compare import compare_cfg


def test_a_declared_design_is_enforced_and_amended_only_with_a_reason(
        fmnist_dir: Path, tmp_path: Path) -> None:
    cfg = compare_cfg(fmnist_dir, tmp_path / "out",
                      arms=[{"name": "sup", "recipe": "supervised", "epochs": 1},
                            {"name": "ssl", "recipe": "simclr", "epochs": 1,
                             "protocol": "linear"}])
    (tmp_path / "study.yaml").write_text(yaml.safe_dump({"defaults": ["fkt_compare", "_self_"],
                                                        **cfg}))
    study = ["--config-path", str(tmp_path), "--config-name", "study"]
    done = run_tool(fkt_plugin.cli.compare.main, *study, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    declared = json.loads((tmp_path / "out" / "declaration.json").read_text())
    assert declared["runs_finished_when_declared"] == 0 and declared["amendments"] == []
    recipe = Path(cfg["recipes"]) / "simclr.yaml"
    assert declared["design"]["arms"][1]["recipe_sha256"] == hashlib.sha256(
        recipe.read_bytes()).hexdigest()
    runs = sorted((tmp_path / "out" / "runs").glob("*/results.json"))
    assert len(runs) == 2
    assert all(json.loads(r.read_text())["declaration"] == declared["sha256"] for r in runs)
    report = (tmp_path / "out" / "results.md").read_text()
    assert report.startswith(f"Declared {declared['declared']} (design sha "
                             f"{declared['sha256'][:12]}")
    assert "; 0 amendments." in report.splitlines()[0]

    # The pairs added after two runs finished: refused, then recorded with the reason.
    pairs = "paired=[[sup,ssl]]"
    done = run_tool(fkt_plugin.cli.compare.main, *study, pairs, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("error: this sweep's design differs from the one declared")
    assert 'paired: [] -> [["sup", "ssl"]]' in done.stderr and "amend=" in done.stderr
    done = run_tool(fkt_plugin.cli.compare.main, *study, pairs, "amend='a paired reading'",
                    cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    amended = json.loads((tmp_path / "out" / "declaration.json").read_text())
    (amendment,) = amended["amendments"]
    assert amendment["reason"] == "a paired reading" and amendment["runs_finished"] == 2
    assert amendment["test_numbers_written"] is True
    assert amendment["sha256_before"] == declared["sha256"] != amended["sha256"]
    assert amended["declared"] == declared["declared"]
    lines = (tmp_path / "out" / "results.md").read_text().splitlines()
    assert "; 1 amendment." in lines[0]
    assert lines[1].startswith(f"- Amended {amendment['time']}: a paired reading (1 changes, "
                               "2 runs finished, test numbers already written)")
    # The amended design is the one enforced now.
    assert run_tool(fkt_plugin.cli.compare.main, *study, pairs, cwd=tmp_path).returncode == 0
