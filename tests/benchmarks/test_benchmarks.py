"""fkt-bench: interleaved timing, and both commands' tables."""

from __future__ import annotations

import re
import traceback
import warnings
from pathlib import Path

import pytest
import torch

from fkt_plugin.benchmarks import syncs, timing
from fkt_plugin.benchmarks.training import synthetic_dataset
from fkt_plugin.cli.bench import main
from fkt_plugin.recipes import PRETRAIN_RECIPES


def test_arms_alternate_and_warmup_rounds_are_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])
    calls: list[str] = []
    durations = {"a": iter([100.0, 1.0, 5.0, 2.0]), "b": iter([100.0, 3.0, 3.0, 4.0])}
    # Rounds alternate the order: a b | b a | a b | b a.

    def arm(name: str):
        def call() -> None:
            calls.append(name)
            clock[0] += next(durations[name])
        return call

    medians = timing.interleaved_medians({"a": arm("a"), "b": arm("b")}, rounds=3, warmup=1)
    assert calls == ["a", "b", "b", "a"] * 2
    assert medians == {"a": 2.0, "b": 3.0}


def _table(text: str) -> list[list[str]]:
    rows = [line.strip("|").split("|") for line in text.splitlines()
            if line.startswith("|") and not line.startswith("|---")]
    return [[cell.strip() for cell in row] for row in rows[1:]]


def _number(cell: str) -> float:
    return float(re.sub(r"[,x]", "", cell))


def _ratio_of_rounded(ratio: str, numerator: str, denominator: str) -> bool:
    """Whether a ratio printed to two or three decimals can be that of two rates printed as integers
    (each up to 0.5 off its true value)."""
    a, b = _number(numerator), _number(denominator)
    low, high = (a - 0.5) / (b + 0.5), (a + 0.5) / max(b - 0.5, 1e-9)
    return low - 0.005 <= _number(ratio) <= high + 0.005


def test_bench_aug_writes_a_row_per_preset_and_size(tmp_path: Path) -> None:
    out = tmp_path / "aug.md"
    main(["aug", "--sizes", "16", "24", "--batch-size", "8", "--rounds", "1", "--workers", "3",
          "--device", "cpu", "--out", str(out)])
    text = out.read_text()
    assert "Command: `fkt-bench aug --sizes 16 24" in text
    rows = _table(text)
    assert [(r[0], r[1]) for r in rows] == [("simclr", "16"), ("byol", "16"), ("simclr", "24"),
                                            ("byol", "24")]
    for _, _, fused, kornia, torchvision, to_kornia, to_torchvision, to_ideal, ops in rows:
        assert _ratio_of_rounded(to_kornia, fused, kornia)
        assert _ratio_of_rounded(to_torchvision, fused, torchvision)
        assert _number(to_ideal) == pytest.approx(_number(to_torchvision) / 3, abs=0.01)
        fused_ops, kornia_ops, torchvision_ops = (_number(n) for n in ops.split(" / "))
        # kornia and torchvision dispatch ops per image; the fused engine per batch.
        assert fused_ops < kornia_ops and fused_ops < torchvision_ops


def test_bench_train_compares_with_the_plain_loop(tmp_path: Path) -> None:
    out = tmp_path / "train.md"
    main(["train", "--methods", "fkt_joint", "--backends", "fused", "--size", "16",
          "--batch-size", "16", "--steps", "2", "--warmup", "0", "--rounds", "1",
          "--device", "cpu", "--out", str(out)])
    (row,) = _table(out.read_text())
    method, backend, view_ops, ours, plain, ratio, steps = row
    assert (method, backend) == ("fkt_joint", "fused") and 0 < _number(view_ops) < 300
    assert _ratio_of_rounded(ratio, ours, plain)
    ours_ms, plain_ms = (float(ms) for ms in steps.split(" / "))
    assert _number(ours) == pytest.approx(16_000 / ours_ms, rel=0.05)


def test_bench_rejects_an_unknown_method(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--methods", "swav"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'swav'" in capsys.readouterr().err


def test_bench_data_measures_both_arms_in_fresh_processes(tmp_path: Path) -> None:
    out = tmp_path / "data.md"
    main(["data", "--images", "400", "--size", "8", "--batch-size", "16", "--rounds", "1",
          "--tmp-dir", str(tmp_path), "--out", str(out)])
    rows = _table(out.read_text())
    assert [r[0] for r in rows] == ["views", "copies"]
    for _, peak, ratio, seconds in rows:
        assert _number(peak) > 0 and _number(seconds) > 0
        # The peak is printed to 0.01 GiB; the ratio is of the unrounded peak.
        assert _number(ratio) == pytest.approx(_number(peak) / (400 * 3 * 8 * 8 / 2**30),
                                               rel=0.05)
    assert list(tmp_path.glob("**/*.npy")) == []  # the array file is removed


def test_bench_mvmr_times_both_steps_and_the_parts(tmp_path: Path) -> None:
    out = tmp_path / "mvmr.md"
    main(["mvmr", "--size", "16", "--batch-size", "8", "--rounds", "1", "--device", "cpu",
          "--mvmr-proj-dim", "32", "--out", str(out)])
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:]
            for line in out.read_text().splitlines() if line.startswith("| ")}
    for part in ("representation pixels", "representation hog", "representation local_std",
                 "distance correlations (forward + backward)", "views",
                 "projection head (forward + backward)"):
        assert f"mvmr: {part}" in rows
    assert rows["simclr step"][1].strip(" |") == "1.00"
    simclr, mvmr = (float(rows[f"{m} step"][0]) for m in ("simclr", "mvmr"))
    assert float(rows["mvmr step"][1].strip(" |")) == pytest.approx(mvmr / simclr, abs=0.02)
    assert "MV-MR head 3 layers of 32" in out.read_text()


def test_bench_guided_times_both_samplers(tmp_path: Path) -> None:
    out = tmp_path / "guided.md"
    main(["guided", "--images", "5000", "--k", "64", "--batch-size", "64", "--rounds", "1",
          "--out", str(out)])
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ")][1:]
    assert [row.split(" | ")[0].strip("| ") for row in rows] == ["guided (G-SimCLR)", "uniform"]
    assert all(float(row.split(" | ")[1].strip(" |")) > 0 for row in rows)
    assert "5,000 images in 64 random clusters, batch 64, one CPU thread" in out.read_text()


@pytest.mark.parametrize("command", ["syncs", "gpu"])
def test_bench_syncs_and_gpu_need_a_cuda_device(command: str,
                                                capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--device", "cpu"])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert "--device is 'cpu'" in err and "--device cuda" in err


def test_sync_sites_are_the_innermost_frame_of_the_package_else_lightning() -> None:
    package_file = str(syncs.PACKAGE_ROOT / "methods" / "base.py")
    lightning_file = "/env/site-packages/pytorch_lightning/loops/fit_loop.py"
    torch_file = "/env/site-packages/torch/_tensor.py"
    bench_files = [str(syncs.PACKAGE_ROOT / "cli" / "bench.py"),
                   str(syncs.PACKAGE_ROOT / "benchmarks" / "syncs.py")]

    def frames(*files: str) -> list[traceback.FrameSummary]:
        return [traceback.FrameSummary(f, i + 1, f"f{i}") for i, f in enumerate(files)]

    assert syncs.call_site(frames(lightning_file, package_file, torch_file)) == (
        "fkt-plugin", "fkt_plugin/methods/base.py:2 (f1)")
    assert syncs.call_site(frames(*bench_files, lightning_file, torch_file)) == (
        "Lightning", "loops/fit_loop.py:3 (f2)")
    assert syncs.call_site(frames("/x/run.py", torch_file)) == ("other", "torch/_tensor.py:2 (f1)")


def test_sync_window_counts_the_steps_after_the_warmup_and_passes_other_warnings_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # torch reports syncs on a CUDA device only: stand in a mode switch, and a torch.isfinite
    # (which the method calls once a step to track non-finite losses) that warns as torch does
    # while the mode is "warn"; the real Trainer loop runs on the CPU.
    mode = ["default"]
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", lambda m: mode.__setitem__(0, m))
    isfinite = torch.isfinite
    other: list[str] = []

    def warning_isfinite(x: torch.Tensor) -> torch.Tensor:
        if mode[0] == "warn":
            warnings.warn(f"{syncs.SYNC_WARNING} (test)", UserWarning, stacklevel=1)
        warnings.warn("an unrelated warning", UserWarning, stacklevel=1)
        return isfinite(x)

    monkeypatch.setattr(torch, "isfinite", warning_isfinite)
    monkeypatch.setattr(warnings, "showwarning",
                        lambda message, *args, **kwargs: other.append(str(message)))
    dataset = synthetic_dataset(8 * 12, 16)
    counts = syncs.count_syncs("simclr", "small_cnn", 8, "32-true", steps=3, warmup=2,
                               dataset=dataset, accelerator="cpu")
    base = syncs.PACKAGE_ROOT / "methods" / "base.py"
    line = next(i for i, text in enumerate(base.read_text().splitlines(), 1)
                if "torch.isfinite(loss.detach())" in text)
    assert counts == {("fkt-plugin", f"fkt_plugin/methods/base.py:{line} (_track)"): 3}
    assert mode[0] == "default"
    assert other.count("an unrelated warning") >= 5


def test_bench_ops_counts_every_recipes_views(tmp_path: Path) -> None:
    out = tmp_path / "ops.md"
    main(["ops", "--batch-sizes", "4", "16", "--out", str(out)])
    rows = _table(out.read_text())
    assert len(rows) == len(list(PRETRAIN_RECIPES.glob("*/*.yaml")))
    for _, views, _, small, large, syncing, kornia in rows:
        assert small == large and syncing == "0" and int(views) >= 1  # batch-independent
        total, kernels = (int(n) for n in small.split(" / "))
        assert kernels < total < _number(kornia)
