"""The run folder: typed results, checkpoints that a kill or a full disk cannot corrupt, a
damaged checkpoint named with its way out, and one run per folder at a time."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

import fkt_plugin.checkpoints
import fkt_plugin.cli.train
from fkt_plugin.checkpoints import SameFolderCheckpointIO, check_resumable
from fkt_plugin.errors import CheckpointError, ConfigError
from fkt_plugin.run_dir import Results, RunDirectory
from fkt_plugin.runner import train
from tests.helpers import REPO, load_recipe, run_tool, tiny_overrides


class _Interrupt(pl.Callback):
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == 1:  # after the first epoch's checkpoint
            raise RuntimeError("simulated interruption")


def test_results_round_trip_and_an_older_file_reads_its_missing_fields_as_none(
        tmp_path: Path) -> None:
    folder = RunDirectory(tmp_path / "run")
    folder.path.mkdir()
    results = Results(name="run", method="simclr", dataset="cifar10", backbone="resnet18",
                      label_fraction=0.1, seed=3, test={"acc1": 0.5}, val_still_rising=None)
    folder.write_results(results)
    on_disk = json.loads(folder.results_file.read_text())
    assert "guided_batches" not in on_disk and on_disk["test"] == {"acc1": 0.5}
    assert folder.read_results() == results
    older = {"name": "old", "method": "supervised", "dataset": "fashion_mnist",
             "backbone": "small_cnn", "label_fraction": 1.0, "seed": 0, "test": {"acc1": 0.8}}
    folder.results_file.write_text(json.dumps(older))
    read = folder.read_results()
    assert read.selection is None and read.labels is None and read.test == {"acc1": 0.8}


def test_a_truncated_last_checkpoint_is_named_with_the_way_out(fmnist_dir: Path,
                                                               tmp_path: Path) -> None:
    overrides = [*tiny_overrides(fmnist_dir, tmp_path), "max_epochs=2", "++name=cut"]
    with pytest.raises(RuntimeError, match="simulated interruption"):
        train(load_recipe("supervised", overrides), callbacks=[_Interrupt()])
    last = tmp_path / "cut" / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # a write cut short
    done = run_tool(fkt_plugin.cli.train.main, "--config-path", "recipes/pretrain/fashion_mnist",
                    "--config-name", "supervised", *overrides, cwd=REPO)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {last} cannot be resumed from: it is truncated")
    assert "best.ckpt over it" in done.stderr and "auto_resume.enabled=false" in done.stderr
    with pytest.raises(CheckpointError):
        check_resumable(last)


def test_a_foreign_file_as_last_checkpoint_is_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "last.ckpt"
    foreign.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="truncated or not a checkpoint"):
        check_resumable(foreign)


@pytest.mark.parametrize("report", ["errno", "torch"])
def test_a_full_disk_leaves_the_previous_checkpoint_and_names_the_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, report: str) -> None:
    target = tmp_path / "checkpoints" / "last.ckpt"
    io = SameFolderCheckpointIO()
    io.save_checkpoint({"epoch": 1, "weights": torch.arange(4.0)}, target)

    def full_disk(obj: object, handle: object) -> None:
        handle.write(b"PK\x03\x04 half")  # type: ignore[attr-defined]
        if report == "errno":
            raise OSError(errno.ENOSPC, "No space left on device")
        # torch's zip writer reports a short write so, with the disk left full.
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 5 vs 3")

    monkeypatch.setattr(fkt_plugin.checkpoints.torch, "save", full_disk)
    if report == "torch":
        usage = shutil.disk_usage(tmp_path)
        monkeypatch.setattr(fkt_plugin.checkpoints.shutil, "disk_usage",
                            lambda path: usage._replace(free=4096))
    with pytest.raises(CheckpointError, match=f"no space left in {target.parent} to write "
                                              f"last.ckpt; {target} from before is intact"):
        io.save_checkpoint({"epoch": 2, "weights": torch.zeros(4)}, target)
    monkeypatch.undo()
    assert torch.load(target, weights_only=True)["epoch"] == 1
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]


WRITER = textwrap.dedent("""
    import sys, torch
    from fkt_plugin.checkpoints import SameFolderCheckpointIO
    class Slow:  # a tensor whose pickling stalls, as a large checkpoint's write takes time
        def __reduce__(self):
            print("writing", flush=True)
            import time; time.sleep(60)
            return (int, (0,))
    SameFolderCheckpointIO().save_checkpoint({"epoch": 2, "slow": Slow()}, sys.argv[1])
""")


def test_a_run_killed_while_writing_leaves_the_previous_checkpoint_loadable(
        tmp_path: Path) -> None:
    target = tmp_path / "checkpoints" / "last.ckpt"
    SameFolderCheckpointIO().save_checkpoint({"epoch": 1, "w": torch.ones(3)}, target)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target)],
                              stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert torch.load(target, weights_only=True)["epoch"] == 1
    check_resumable(target)
    # The next write clears what the killed writer left behind.
    assert [p.name for p in target.parent.glob(".*.partial")]
    SameFolderCheckpointIO().save_checkpoint({"epoch": 3}, target)
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]


HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from fkt_plugin.run_dir import RunDirectory
    with RunDirectory(sys.argv[1]).claimed():
        print("holding", flush=True)
        time.sleep(60)
""")


def test_a_second_run_of_the_same_name_is_refused_while_the_first_runs(
        fmnist_dir: Path, tmp_path: Path) -> None:
    overrides = [*tiny_overrides(fmnist_dir, tmp_path), "++name=twice"]
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "twice")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        done = run_tool(fkt_plugin.cli.train.main, "--config-path",
                        "recipes/pretrain/fashion_mnist", "--config-name", "supervised",
                        *overrides, cwd=REPO)
        assert done.returncode == 2
        assert done.stderr.startswith(f"error: run folder {tmp_path / 'twice'} is held by "
                                      f"process {holder.pid} on {os.uname().nodename}, started ")
        assert "give this run another name=" in done.stderr
        assert not (tmp_path / "twice" / "config.yaml").exists()  # nothing was touched
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # A killed holder leaves nothing stuck: the run starts.
    results = train(load_recipe("supervised", overrides))
    assert results["name"] == "twice"


def test_a_claim_recorded_by_another_host_holds_until_its_heartbeat_stops(
        tmp_path: Path) -> None:
    folder = RunDirectory(tmp_path / "shared")
    folder.path.mkdir()
    record = folder.path / "run.lock.holder"
    # What a process on another node of a shared filesystem without cross-node flock leaves.
    record.write_text(json.dumps({"host": "node-17", "pid": 4242, "started": time.time()}))
    with pytest.raises(ConfigError, match="held by process 4242 on node-17"), folder.claimed():
        pass
    stale = time.time() - 3600
    os.utime(record, (stale, stale))  # node-17's job was killed an hour ago
    with folder.claimed():
        assert json.loads(record.read_text())["pid"] == os.getpid()
    assert not record.exists()
