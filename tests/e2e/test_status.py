"""`tickwire status` as a user runs it, against a real server with a feed that is down: a
looped replay whose file went away after the start fails at its next pass, and again at
each restart."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len

from tests.e2e.conftest import small_config
from tests.e2e.server import Server, start_server
from tests.e2e.test_cli import in_terminal, tickwire


def health(server: Server) -> Any:
    try:
        with urllib.request.urlopen(server.url + "/healthz", timeout=5) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:  # 503 while starting
        return json.loads(exc.read())


@pytest.fixture(scope="module")
def broken_replay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("status-e2e")
    trades = workdir / "a-rather-long-folder-name-for-the-trades" / "trades.csv"
    trades.parent.mkdir()
    trades.write_text("time_ms,price,size,side\n1570752000000,0.0013,10,buy\n"
                      "1570752000500,0.0014,5,sell\n", encoding="utf-8")
    srv = start_server(workdir, small_config(f"""
[[feeds]]
kind = "sim"

[[feeds]]
kind = "replay"
path = "{trades}"
speed = 1
loop = true
code = "xrpeth"
"""))
    trades.unlink()
    deadline = time.monotonic() + 30
    while (feed := health(srv)["feeds"][1])["state"] != "down":
        assert time.monotonic() < deadline, feed
        time.sleep(0.1)
    yield srv
    srv.stop()


def test_a_feed_that_is_down_shows_why_on_80_columns_down_a_pipe(
        broken_replay: Server) -> None:
    result = tickwire("status", server=broken_replay, columns=80)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{broken_replay.url}: degraded, 12 products, 0 connections"
    assert lines[1].split() == ["FEED", "KIND", "STATE", "SINCE", "UPD/S", "ERROR"]
    assert lines[2].split()[:3] == ["sim-0", "sim", "live"]
    replay = lines[3]
    assert replay.split()[:3] == ["replay-1", "replay", "down"]
    assert "ReplayError: " in replay and replay.endswith("…")  # cut to fit
    assert max(map(cell_len, lines)) <= 80 and "\x1b" not in result.stdout
    assert all(line == line.rstrip() for line in lines)


def test_json_has_the_error_and_the_last_error(broken_replay: Server) -> None:
    result = tickwire("status", "--json", server=broken_replay)
    assert result.returncode == 0, result.stderr
    replay = json.loads(result.stdout)["feeds"][1]
    assert replay["state"] == "down"  # from its first failure on, restarts or not
    assert replay["error"].startswith("ReplayError: ")
    assert "No such file or directory" in replay["error"] == replay["last_error"]
    assert replay["last_error_at"].endswith("+08:00")


def test_on_an_80_column_terminal(broken_replay: Server) -> None:
    status, shown = in_terminal("status", "--server", broken_replay.url, columns=80)
    assert status == 0, shown
    lines = shown.strip().splitlines()
    assert "degraded" in lines[0] and lines[1].split()[0] == "FEED"
    assert max(map(cell_len, lines)) <= 80, shown
    assert any(line.split()[:3] == ["replay-1", "replay", "down"] for line in lines)


def test_an_unreachable_server_is_one_line_and_status_1(tmp_path: Path) -> None:
    result = tickwire("status", "--server", "127.0.0.1:1", "--timeout", "2")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == ("tickwire: error: cannot reach http://127.0.0.1:1/healthz: "
                             "connection refused\n")
