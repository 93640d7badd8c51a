"""Claims of shared work by lock files: a run folder for its run's lifetime, and a sweep's jobs.

A claim is two things, so that it holds on one machine and across the machines of a cluster:

- an exclusive ``flock`` on the lock file, which the kernel frees when its process ends (also
  when it is killed), so a killed holder never leaves a claim stuck on its machine;
- a holder record beside it (``<lock>.holder``: host, process, start time) whose modification
  time a thread refreshes every :data:`HEARTBEAT_SECONDS`. Shared filesystems do not all carry
  ``flock`` between machines (Lustre without ``-o flock``, BeeGFS without global locks): there a
  record of another host refreshed within :data:`STALE_SECONDS` still refuses the claim, and a
  record that stopped being refreshed (its holder was killed) is taken over.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HEARTBEAT_SECONDS = 30.0
"""How often a holder refreshes its record."""

STALE_SECONDS = 300.0
"""A record of another host not refreshed for this long belongs to a holder that is gone."""


class Held(Exception):
    """The claim is another process's; the message names it (host, process, start time)."""


def _describe(record: dict[str, Any]) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.get("started", 0)))
    return f"process {record.get('pid')} on {record.get('host')}, started {started}"


def _read(record_file: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(record_file.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _running(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie, killed but not yet reaped, does
    not: it holds no lock any more)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, ValueError, OverflowError):
        return False
    except PermissionError:  # a process of another user holds that pid
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def _alive_elsewhere(record_file: Path, record: dict[str, Any]) -> bool:
    """Whether a record's holder may still run: on this host, its process exists; on another,
    its heartbeat is recent."""
    if record.get("host") == socket.gethostname():
        pid = int(record.get("pid", -1))
        return pid != os.getpid() and _running(pid)
    try:
        age = time.time() - record_file.stat().st_mtime
    except OSError:
        return False
    return age < STALE_SECONDS


def _heartbeat(record_file: Path, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_SECONDS):
        try:
            os.utime(record_file)
        except OSError:
            return


@contextmanager
def hold(lock_file: Path, what: str) -> Iterator[None]:
    """Holds ``lock_file`` while the block runs.

    Args:
        lock_file: The lock file (created with its folder).
        what: What the claim is for, named in a refusal (``run folder runs/x``).

    Raises:
        Held: Another process holds it; nothing was changed.
    """
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    record_file = lock_file.with_name(lock_file.name + ".holder")
    with lock_file.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            record = _read(record_file)
            holder = _describe(record) if record else "another process"
            raise Held(f"{what} is held by {holder}") from None
        record = _read(record_file)
        if record is not None and _alive_elsewhere(record_file, record):
            fcntl.flock(handle, fcntl.LOCK_UN)
            raise Held(f"{what} is held by {_describe(record)}")
        record_file.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                           "started": time.time()}))
        stop = threading.Event()
        beat = threading.Thread(target=_heartbeat, args=(record_file, stop), daemon=True)
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join()
            record_file.unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)
