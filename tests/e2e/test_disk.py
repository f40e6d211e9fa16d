"""A full disk under a running server: it says so once, reports itself degraded, goes on
serving quotes and the WebSocket from memory, writes again by itself when space returns,
and the bars of the outage are all stored then.

The data dir is a small tmpfs the test mounts (root and a kernel that allows it; the test
skips otherwise). The disk is filled to a little short of full while the server is stopped
and the server started again, so that the write-ahead log, growing with its writes, meets
the end of the disk within a second or two.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import GENEROUS_LIMITS, small_config
from tests.e2e.server import Server, start_server
from tests.e2e.storecheck import Snapshot, check_store, db_path, get_json

BUSY = small_config(GENEROUS_LIMITS + '[[feeds]]\nkind = "sim"\nrate = 100.0\n')
DISK_MB = 32
MARGIN = 512 * 1024
"""Bytes left free when the disk is filled: room to start, not to write for long."""
STORE_FAILING = "store cannot write; keeping changes in memory and retrying"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs",
                           str(mount)], capture_output=True, text=True, timeout=30)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True, timeout=30)


def fill(disk: Path, leave: int) -> Path:
    """A file taking all of the disk's free space but `leave` bytes."""
    filler = disk / "filler"
    stat = os.statvfs(disk)
    size = stat.f_bavail * stat.f_frsize - leave
    with filler.open("wb") as out:
        chunk = b"\0" * (1 << 20)
        while size > 0:
            size -= out.write(chunk[:size])
    return filler


def health(server: Server) -> dict[str, Any]:
    body: dict[str, Any] = get_json(server, "/healthz")  # 200 when degraded: it serves
    return body


def wait_for(server: Server, status: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (body := health(server))["status"] != status:
        assert time.monotonic() < deadline, body
        time.sleep(0.1)
    return body


async def pushes(server: Server, code: str, count: int) -> list[dict[str, Any]]:
    """`count` pushes of `code` over a new WebSocket connection."""
    got: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(server.ws_url) as ws:
        await ws.send_str(json.dumps({"Key": code}))
        while len(got) < count:
            message = json.loads((await ws.receive(10)).data)
            if "body" in message:
                got.append(message["body"])
    return got


@pytest.mark.slow
def test_a_full_disk_degrades_then_recovers_with_every_bar(small_disk: Path,
                                                            tmp_path: Path) -> None:
    data = small_disk / "data"
    start_server(tmp_path / "first", BUSY, data_dir=data).stop()  # fills the history
    filler = fill(small_disk, MARGIN)
    server = start_server(tmp_path / "full", BUSY, data_dir=data)
    try:
        failing = wait_for(server, "degraded")["store"]
        assert failing["state"] == "failing" and "full" in failing["error"]
        began = time.monotonic()
        quotes = [get_json(server, "/getQuote.php?code=btcusdt")["data"]["body"]["Time"]]
        served = asyncio.run(pushes(server, "ethusdt", 20))
        assert len({body["Price"] for body in served}) > 1
        snapshot = Snapshot(server)
        time.sleep(max(0.0, 3 - (time.monotonic() - began)))  # a few retries' worth
        quotes.append(get_json(server, "/getQuote.php?code=btcusdt")["data"]["body"]["Time"])
        assert quotes[1] > quotes[0]  # still moving, from memory
        assert health(server)["store"]["pending_bars"] > 0
        outage = time.monotonic() - began

        filler.unlink()
        recovered = wait_for(server, "ok")["store"]
        assert recovered["state"] == "ok" and recovered["dropped_bars"] == 0
        log = server.log()
        assert log.count(STORE_FAILING) == 1
        assert "store writing again" in log
        time.sleep(1)  # the newest changes reach the store
        kept = snapshot.assert_kept(db_path(data))
        bars = check_store(db_path(data))
    finally:
        server.stop()
    print(f"\nfull disk: outage_s {outage:.1f}, pushes_during 20, log_lines 1, "
          f"bars_seen_during_kept {kept}, bars_checked {bars}, dropped 0, lost 0")


def test_a_read_only_data_dir_at_start_is_one_clear_line(tmp_path: Path) -> None:
    """Read-only before the server starts (a read-only bind mount: root writes through
    mere permissions): it refuses to start, naming the file and the reason. (Made
    read-only while the server runs, the kernel refuses the remount: the server holds
    its files open for writing. A full disk is that outage's test.)"""
    data = tmp_path / "data"
    start_server(tmp_path / "first", small_config(), data_dir=data).stop()
    bound = subprocess.run(["mount", "--bind", str(data), str(data)],
                           capture_output=True, text=True, timeout=30)
    if bound.returncode != 0:
        pytest.skip(f"cannot bind-mount here (needs root): {bound.stderr.strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(data)], check=True, timeout=30)
        with pytest.raises(RuntimeError) as failed:
            start_server(tmp_path / "again", small_config(), data_dir=data, ready_timeout=30)
    finally:
        subprocess.run(["umount", str(data)], check=True, timeout=30)
    said = str(failed.value).splitlines()
    assert said[0] == "server exited with 1:"
    assert said[1:] == [f"tickwire: [Errno 30] Read-only file system: '{data}/tickwire.lock'"]
