"""One server per data dir: an OS lock that names its holder and dies with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tickwire.datadir import DataDirInUse, DataDirLock

HOLD = """
import sys, time
from pathlib import Path
from tickwire.datadir import DataDirLock
DataDirLock(Path(sys.argv[1])).acquire("serving test:1")
print("held", flush=True)
time.sleep(60)
"""


def hold(data_dir: Path) -> subprocess.Popen[str]:
    """Another process that takes the lock and keeps it."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(data_dir)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_holder_is_refused_naming_the_dir_and_the_first(tmp_path: Path) -> None:
    holder = hold(tmp_path)
    try:
        with pytest.raises(DataDirInUse) as refused:
            DataDirLock(tmp_path).acquire("serving here:2")
        message = str(refused.value)
        assert str(tmp_path) in message and f"pid {holder.pid}" in message
        assert "serving test:1" in message
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_is_free_once_its_holder_is_killed(tmp_path: Path) -> None:
    holder = hold(tmp_path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    lock = DataDirLock(tmp_path)
    lock.acquire("serving here:2")  # no stale lock
    assert f"pid {os.getpid()}" in (tmp_path / "tickwire.lock").read_text()
    lock.release()
    again = DataDirLock(tmp_path)
    again.acquire("serving here:3")
    again.release()


def test_one_process_cannot_take_a_dir_twice(tmp_path: Path) -> None:
    first = DataDirLock(tmp_path)
    first.acquire("a")
    with pytest.raises(DataDirInUse):
        DataDirLock(tmp_path).acquire("b")
    first.release()
    started = time.monotonic()
    DataDirLock(tmp_path).acquire("c")  # at once, no waiting
    assert time.monotonic() - started < 5
