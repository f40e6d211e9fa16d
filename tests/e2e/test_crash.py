"""Crash and restart, again and again: `kill -9` at random moments during ingest and during
a replay at speed 0, and the store's files taken mid-write as a power cut leaves them.

After every fault the database passes `PRAGMA integrity_check`, no bar is missing,
doubled or malformed, and at most the last second of updates is gone. CI plays a few
rounds; `RELIABILITY_ROUNDS=20` plays the full run (RELIABILITY.md).
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import GENEROUS_LIMITS, small_config
from tests.e2e.server import Server, start_server
from tests.e2e.storecheck import (
    Snapshot,
    check_store,
    copy_store,
    db_path,
    get_json,
    stored_bars,
)

ROUNDS = int(os.environ.get("RELIABILITY_ROUNDS", "3"))
SEED = int(os.environ.get("RELIABILITY_SEED", str(time.time_ns() % 10**6)))
BUSY = small_config(GENEROUS_LIMITS + '[[feeds]]\nkind = "sim"\nrate = 100.0\n')
"""A server whose store writes all the time: 11 products, 100 updates a second each."""
LAST_SECOND = 1.0
"""The most of the newest updates a kill may lose (the store writer commits at once)."""


def report(what: str, **figures: object) -> None:
    """A line of figures, shown with `pytest -s` (RELIABILITY.md quotes them)."""
    print(f"\n{what}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))


@pytest.mark.slow
def test_kill_9_during_ingest_loses_at_most_the_last_second(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    data = tmp_path / "data"
    server = start_server(tmp_path, BUSY, data_dir=data)
    bars = compared = 0
    restarts: list[float] = []
    try:
        for _ in range(ROUNDS):
            time.sleep(rng.uniform(0.05, 1.5))
            snapshot = Snapshot(server)
            time.sleep(LAST_SECOND)
            server.kill()
            bars += check_store(db_path(data))
            compared += snapshot.assert_kept(db_path(data))
            began = time.monotonic()
            server = start_server(tmp_path, BUSY, data_dir=data)
            restarts.append(time.monotonic() - began)
            assert "restored from store" in server.log()
        assert get_json(server, "/healthz")["status"] == "ok"
    finally:
        server.stop()
    report("kill -9 during ingest", seed=SEED, kills=ROUNDS, recoveries=len(restarts),
           bars_checked=bars, snapshot_bars_kept=compared, lost=0,
           slowest_restart_s=round(max(restarts), 2))


@pytest.mark.slow
def test_power_cut_copies_taken_mid_write_open_sound(tmp_path: Path) -> None:
    """The files are taken while the process is frozen at a random moment (SIGSTOP):
    what the disk holds at that instant, the writer perhaps midway through a transaction.
    (Copied file by file while it runs, they would be a mix of moments no disk ever
    held.)"""
    rng = random.Random(SEED + 1)
    server = start_server(tmp_path, BUSY)
    copies: list[Path] = []
    bars = compared = 0
    try:
        for i in range(ROUNDS):
            time.sleep(rng.uniform(0.05, 1.0))
            snapshot = Snapshot(server)
            time.sleep(LAST_SECOND)
            server.proc.send_signal(signal.SIGSTOP)
            try:
                copies.append(copy_store(server.data_dir, tmp_path / f"cut-{i}"))
            finally:
                server.proc.send_signal(signal.SIGCONT)
            bars += check_store(db_path(copies[-1]))
            compared += snapshot.assert_kept(db_path(copies[-1]))
    finally:
        server.stop()
    again = start_server(tmp_path / "again", BUSY, data_dir=copies[-1])
    try:
        assert "restored from store" in again.log()
        assert get_json(again, "/healthz")["status"] == "ok"
    finally:
        again.stop()
    bars += check_store(db_path(copies[-1]))
    report("power cut", seed=SEED, copies=ROUNDS, opened_sound=ROUNDS, bars_checked=bars,
           snapshot_bars_kept=compared, lost=0)


# a replay at speed 0 ----------------------------------------------------------------------

TRADES = 400_000


def synthetic_trades(path: Path) -> Path:
    """Two days of trades of one product, the same every run."""
    rng = random.Random(7)
    ts, price = 1_700_000_000_000, 100.0
    with path.open("w", encoding="utf-8") as out:
        out.write("time_ms,price,size,side\n")
        for _ in range(TRADES):
            ts += rng.randint(0, 900)
            price = max(1.0, price + rng.choice((-0.01, 0.01)))
            out.write(f"{ts},{price:.2f},{rng.randint(1, 50) / 10},"
                      f"{rng.choice(('buy', 'sell'))}\n")
    return path


def replay_state(server: Server) -> str:
    feeds = get_json(server, "/healthz")["feeds"]
    return str(feeds[0]["state"])


def wait_finished(server: Server) -> None:
    deadline = time.monotonic() + 120
    while replay_state(server) != "finished":
        assert time.monotonic() < deadline, "the replay did not finish"
        time.sleep(0.05)


def every_bar(data: Path) -> dict[tuple[str, int], tuple[float, ...]]:
    bars: dict[tuple[str, int], tuple[float, ...]] = {}
    for interval in ("1m", "5m", "15m", "30m", "1h", "1d", "1M"):
        for row in stored_bars(db_path(data), "synth", interval):
            bars[(interval, row[0])] = row[1:]
    return bars


def assert_partial_of(got: dict[tuple[str, int], tuple[float, ...]],
                      want: dict[tuple[str, int], tuple[float, ...]]) -> None:
    """Each stored bar is the reference's, or the start of it (a bar the kill cut short:
    the same open, a range inside it, less volume): none invented, none doubled."""
    for key, (o, h, low, _c, v) in got.items():
        assert key in want, ("a bar the data does not have", key)
        wo, wh, wl, _wc, wv = want[key]
        assert o == wo and h <= wh and low >= wl and v <= wv + 1e-6, (key, got[key], want[key])


@pytest.mark.slow
def test_kill_9_during_a_replay_at_speed_0_ends_with_the_same_bars(tmp_path: Path) -> None:
    rng = random.Random(SEED + 2)
    trades = synthetic_trades(tmp_path / "trades.csv")
    config = small_config(f'[[feeds]]\nkind = "replay"\npath = "{trades}"\nspeed = 0\n'
                          'code = "synth"\n')
    reference = start_server(tmp_path / "reference", config)
    began = time.monotonic()
    try:
        wait_finished(reference)
    finally:
        reference.stop()
    playing = time.monotonic() - began
    want = every_bar(reference.data_dir)

    data = tmp_path / "crashed"
    killed_midway = 0
    for i in range(ROUNDS):
        server = start_server(tmp_path / f"round-{i}", config, data_dir=data)
        time.sleep(rng.uniform(0.0, playing * 0.8))
        killed_midway += replay_state(server) == "live"
        server.kill()
        check_store(db_path(data), ("synth",), {})
        assert_partial_of(every_bar(data), want)
    last = start_server(tmp_path / "last", config, data_dir=data)
    try:
        wait_finished(last)
    finally:
        last.stop()
    assert every_bar(data) == want
    assert killed_midway >= ROUNDS // 2, "the kills came too late to test anything"
    report("kill -9 during a replay at speed 0", seed=SEED, kills=ROUNDS,
           killed_midway=killed_midway, recoveries=ROUNDS, reference_bars=len(want),
           bars_differing_after=0, lost=0)
