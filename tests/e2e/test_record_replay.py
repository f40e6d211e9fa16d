"""Record, then replay: a server replaying real trades records every body it pushes; a
second server replaying that recording at speed 0 gives exactly the first one's bars."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.e2e.conftest import GENEROUS_LIMITS, small_config
from tests.e2e.server import Server, start_server
from tests.e2e.test_replay import every_bar, get_json, replay_config, trades_csv


def finished(server: Server, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        feed: dict[str, Any] = {f["name"]: f for f in get_json(server, "/healthz")["feeds"]}[
            name]
        if feed["state"] == "finished":
            return feed
        assert time.monotonic() < deadline, feed
        time.sleep(0.1)


def test_a_recording_replayed_at_speed_0_gives_the_recording_servers_bars(
        shared_data: Path, tmp_path: Path) -> None:
    trades = trades_csv(shared_data, tmp_path / "xrpeth.csv")
    recording = tmp_path / "recording"
    first = start_server(tmp_path / "first", replay_config(
        trades, f'[record]\npath = "{recording}"\ncodes = ["xrpeth"]\n'))
    try:
        assert finished(first, "replay-1")["updates"] == 12_477
        bars = {interval: every_bar(first, interval, rows)
                for interval, rows in (("1m", 3560), ("5m", 712), ("1h", 60))}
        last_quote = get_json(first, "/getQuote.php?code=xrpeth")["data"]["body"]
    finally:
        first.stop()  # a clean stop finishes the recording's file
    files = sorted(recording.glob("*.jsonl.gz"))
    assert files, list(recording.iterdir())

    second = start_server(tmp_path / "second", small_config(GENEROUS_LIMITS + f"""
[[feeds]]
kind = "sim"

[[feeds]]
kind = "replay"
path = "{recording}"
speed = 0
"""))
    try:
        replayed = finished(second, "replay-1")
        assert replayed["updates"] == 12_477 and replayed["skipped"] == 0
        for interval, want in bars.items():
            assert every_bar(second, interval, len(want)) == want, interval
        assert get_json(second, "/getQuote.php?code=xrpeth")["data"]["body"] == last_quote
    finally:
        second.stop()
