"""Replay: Binance's real XRPETH trades, played at speed 0 through a real server, give
Binance's own 1m and 5m candles through `redis.php`, paging back with `end=`."""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.e2e.conftest import GENEROUS_LIMITS, small_config
from tests.e2e.server import Server, free_port, start_server, write_config
from tickwire.models import WINDOW

DATASET = "freqtrade_binance_XRPETH_2019-10-11"


def trades_csv(shared_data: Path, out: Path) -> Path:
    """The dataset's trades as a trades CSV: the aggressor sold when the buyer was maker."""
    with gzip.open(shared_data / DATASET / "XRP_ETH-trades.json.gz") as fh:
        trades = [t["info"] for t in json.load(fh)]
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["time_ms", "price", "size", "side"])
        for trade in trades:
            writer.writerow([trade["T"], trade["p"], trade["q"],
                             "sell" if trade["m"] else "buy"])
    return out


def replay_feeds(path: Path, extra: str = "") -> str:
    """Limits out of the way, the simulator and a replay of xrpeth's trades at speed 0."""
    return GENEROUS_LIMITS + f"""
[[feeds]]
kind = "sim"

[[feeds]]
kind = "replay"
path = "{path}"
speed = 0
code = "xrpeth"
{extra}"""


def replay_config(path: Path, extra: str = "") -> str:
    return small_config(replay_feeds(path, extra))


def get_json(server: Server, path: str) -> Any:
    with urllib.request.urlopen(server.url + path, timeout=10) as resp:
        return json.loads(resp.read())


def every_bar(server: Server, interval: str, want: int) -> list[list[Any]]:
    """All bars of xrpeth in `interval`, oldest first, paging back with `end=`; waits for the
    store to hold all `want` of them (it writes a quarter second behind)."""
    deadline = time.monotonic() + 60
    while True:
        bars: list[list[Any]] = []
        end = ""
        size = WINDOW[interval]
        while True:
            page = get_json(server, f"/redis.php?code=xrpeth&time={interval}&rows={size}{end}")
            bars += page
            if len(page) < size:
                break
            end = f"&end={page[-1][0] - 1}"
        if len(bars) >= want or time.monotonic() > deadline:
            return bars[::-1]
        time.sleep(0.25)


def as_decimals(row: list[Any]) -> tuple[Decimal, ...]:
    return tuple(Decimal(repr(float(v))) for v in row)


def test_replayed_trades_give_binances_own_candles(shared_data: Path, tmp_path: Path) -> None:
    path = trades_csv(shared_data, tmp_path / "xrpeth.csv")
    server = start_server(tmp_path, replay_config(path))
    try:
        feeds = {f["name"]: f for f in get_json(server, "/healthz")["feeds"]}
        assert feeds["replay-1"]["kind"] == "replay"
        for interval, rows in (("1m", 3560), ("5m", 712)):
            expected = json.loads((shared_data / DATASET / f"XRP_ETH-{interval}.json")
                                  .read_text())
            assert len(expected) == rows
            served = every_bar(server, interval, rows)
            assert len(served) == rows, interval
            mine = [as_decimals([b[0], *b[1:5], b[6]]) for b in served]
            theirs = [as_decimals(row) for row in expected]
            assert [m for m, t in zip(mine, theirs, strict=True) if m != t] == [], interval
        done = {f["name"]: f for f in get_json(server, "/healthz")["feeds"]}["replay-1"]
        assert done["state"] == "finished" and done["updates"] == 12_477
        assert done["skipped"] == 0
        quote = get_json(server, "/getQuote.php?code=xrpeth")["data"]["body"]
        assert quote["StockCode"] == "xrpeth" and quote["Price"] == float(expected[-1][4])
    finally:
        server.stop()


def test_a_csv_that_is_not_trades_stops_the_start_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("when,what\n1,2\n", encoding="utf-8")
    for path, says in ((bad, "the header must have time_ms,price,size,side"),
                       (tmp_path / "nowhere.csv", "no file to replay at")):
        config = tmp_path / "bad.toml"
        write_config(config, free_port(), tmp_path / "data", replay_config(path))
        result = subprocess.run([sys.executable, "-m", "tickwire", "serve", "--config",
                                 str(config)], capture_output=True, text=True, timeout=60)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, result.stderr
        assert "feeds[1].path" in lines[0] and says in lines[0]


def test_bad_lines_are_skipped_counted_and_logged_once(tmp_path: Path) -> None:
    path = tmp_path / "trades.csv"
    path.write_text("time_ms,price,size,side\n"
                    "1570752000000,0.0013,10,buy\n"
                    "not,a,trade,line\n"
                    "1570752001000,0.0014,5,sell\n"
                    "1570751000000,0.0015,5,sell\n"  # earlier than the line before
                    "1570752002000,0.0016,1,hold\n"  # no such side
                    "1570752003000,0.0012,2,buy\n", encoding="utf-8")
    server = start_server(tmp_path, replay_config(path))
    try:
        deadline = time.monotonic() + 30
        while (feed := get_json(server, "/healthz")["feeds"][1])["state"] != "finished":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert (feed["updates"], feed["skipped"]) == (3, 3)
        bars = get_json(server, "/redis.php?code=xrpeth&time=1m&rows=10")
        assert [b[1:5] for b in bars] == [[0.0013, 0.0014, 0.0012, 0.0012]]
        logged = [line for line in server.log().splitlines() if "replay skips a line" in line]
        assert len(logged) == 1 and '"line":3' in logged[0]
    finally:
        server.stop()
