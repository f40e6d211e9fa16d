"""`[record]` on a real server: the recording holds the bytes a WebSocket client is pushed;
a `kill -9` leaves a file that reads back up to about the last second; a restart repairs it
and appends, and a clean stop leaves a file every gzip reader reads whole."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import urllib.request
from pathlib import Path

import aiohttp

from tests.e2e.conftest import small_config
from tests.e2e.server import Server, start_server
from tickwire.feeds.record import SUFFIX, read_lines

PREFIX, SUFFIX_PUSH = b'{"body":', b"}"


async def pushed_bodies(server: Server, code: str, seconds: float) -> list[bytes]:
    """The bodies pushed for `code` over `seconds`, as bytes, less the first (a snapshot)."""
    bodies: list[bytes] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(server.ws_url) as ws:
        await ws.send_str(json.dumps({"Key": code}))
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = await ws.receive(left)
            except TimeoutError:
                break
            frame = message.data.encode()
            assert frame.startswith(PREFIX) and frame.endswith(SUFFIX_PUSH), frame[:80]
            bodies.append(frame[len(PREFIX):-len(SUFFIX_PUSH)])
    return bodies[1:]


def recorded(folder: Path) -> list[dict[str, object]]:
    return [json.loads(line) for path in sorted(folder.glob("*" + SUFFIX))
            for line in read_lines(path)]


def test_recording_holds_the_pushes_and_survives_a_kill(tmp_path: Path) -> None:
    folder = tmp_path / "recordings"  # made at start
    config = small_config(f'[record]\npath = "{folder}"\ncodes = ["btcusdt"]\n')
    server = start_server(tmp_path, config)
    try:
        pushes = asyncio.run(pushed_bodies(server, "btcusdt", 2.0))
        time.sleep(1.0)  # the recorder writes every half second
        lines = recorded(folder)
        assert {line["body"]["StockCode"] for line in lines} == {"btcusdt"}  # type: ignore[index]
        raw = {line for path in folder.glob("*" + SUFFIX) for line in read_lines(path)}
        bodies = {x[x.index(b',"body":') + 8:-1] for x in raw}
        assert len(pushes) >= 3 and all(body in bodies for body in pushes)  # byte for byte
        with urllib.request.urlopen(server.url + "/healthz", timeout=10) as resp:
            health = json.loads(resp.read())
        assert health["status"] == "ok" and health["record"]["state"] == "ok"
        assert health["record"]["lines_written"] >= len(pushes)
        assert health["record"]["file"] in {p.name for p in folder.iterdir()}
        with urllib.request.urlopen(server.url + "/metrics", timeout=10) as resp:
            metrics = resp.read().decode()
        assert "tickwire_record_lines_total" in metrics
        time.sleep(1.5)
    finally:
        server.kill()
    killed_ms = time.time() * 1000
    lines = recorded(folder)  # a file cut short reads back to the cut
    last = max(int(line["t"]) for line in lines)  # type: ignore[call-overload]
    assert killed_ms - last < 2000, killed_ms - last

    again = start_server(tmp_path, config, data_dir=server.data_dir)
    time.sleep(1.0)
    assert again.stop() == 0
    assert "recording was cut short (a kill?): repaired before appending" in again.log()
    after = b"".join(gzip.decompress(p.read_bytes()) for p in sorted(folder.glob("*" + SUFFIX)))
    after_lines = [json.loads(line) for line in after.splitlines()]
    assert after_lines[:len(lines)] == lines  # nothing lost to the repair
    assert len(after_lines) > len(lines)
