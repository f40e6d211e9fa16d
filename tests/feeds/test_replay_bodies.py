"""Replay of quote bodies (the server's recording, `tickwire record`'s output): each body is
served as recorded, and the bars equal those of the server that made the bodies."""

from __future__ import annotations

import gzip
import random
import time
from pathlib import Path

import pytest

from tests.ingest.test_pipeline import make_ingest
from tickwire.config import Config
from tickwire.feeds.replay import ReplayError, ReplayFeed, replay_files, shape_of
from tickwire.market import Market, TimeZone
from tickwire.market.bars import BarRow
from tickwire.models import BUY, SELL, Update
from tickwire.server import load_products

START = 1_796_000_000_000  # a Thursday, in the small hours in Shanghai
CODES = ["btcusdt", "ethusdt"]


def live_run(minutes: int, seed: int = 7) -> tuple[list[tuple[int, bytes]], Market]:
    """A market fed random trades and books for `minutes`, with every body it made and the
    time it made it."""
    products = load_products(Config())
    market = Market([products.products[c] for c in CODES], TimeZone("Asia/Shanghai"))
    rng = random.Random(seed)
    prices = {"btcusdt": 93_000.0, "ethusdt": 3_100.0}
    bodies: list[tuple[int, bytes]] = []
    ts = START
    while ts < START + minutes * 60_000:
        ts += rng.randint(50, 4_000)
        code = rng.choice(CODES)
        price = prices[code] = round(prices[code] * (1 + rng.gauss(0, 0.0005)), 2)
        bids = [(price - 0.01 * i, rng.random()) for i in range(1, 6)]
        asks = [(price + 0.01 * i, rng.random()) for i in range(1, 6)]
        trades = [(price, round(rng.random() * 2, 5), rng.choice((BUY, SELL)))]
        body = market.apply(Update(code, ts, price, bids, asks, trades))
        assert body is not None
        bodies.append((ts, body))
    market.advance(ts, CODES)
    return bodies, market


def closed(market: Market, code: str, interval: str) -> list[BarRow]:
    series = market.products[code].series[interval]
    return [row for _, row in series.recent if not isinstance(row, bytes)]


def write_recording(path: Path, bodies: list[tuple[int, bytes]]) -> Path:
    lines = b"".join(b'{"t":%d,"body":%s}\n' % (t, body) for t, body in bodies)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(lines))
    else:
        path.write_bytes(lines)
    return path


async def replay(tmp_path: Path, files: list[Path]) -> tuple[ReplayFeed, Market]:
    ingest = make_ingest(tmp_path, CODES)
    feed = ReplayFeed(files, CODES, speed=0)
    await feed.run(ingest.sink(CODES))
    ingest.writer.close()
    ingest.store.close()
    return feed, ingest.market


@pytest.mark.parametrize("name", ["2026-12-01.jsonl.gz", "pushes.jsonl"])
async def test_a_recording_replays_to_the_same_bodies_and_closed_bars(
        tmp_path: Path, name: str) -> None:
    bodies, live = live_run(minutes=30)
    path = write_recording(tmp_path / name, bodies)
    feed, replayed = await replay(tmp_path, [path])
    assert feed.updates == len(bodies) and feed.skipped == 0
    for code in CODES:
        newest = [body for _, body in bodies if body.startswith(b'{"StockCode":"%s"'
                                                                  % code.encode())][-1]
        assert replayed.body(code) == newest  # served byte for byte as recorded
        for interval in ("1m", "5m", "15m"):
            want, got = closed(live, code, interval), closed(replayed, code, interval)
            assert got == want, (code, interval)
            assert len(want) >= 30 // int(interval[:-1]) - 2


async def test_tickwire_record_output_is_one_body_a_line(tmp_path: Path) -> None:
    bodies, live = live_run(minutes=5)
    path = tmp_path / "pushes.jsonl"
    path.write_bytes(b"".join(body + b"\n" for _, body in bodies))
    feed, replayed = await replay(tmp_path, [path])
    assert feed.updates == len(bodies)
    assert closed(replayed, "btcusdt", "1m") == closed(live, "btcusdt", "1m")


async def test_bad_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    bodies, _ = live_run(minutes=2)
    lines = [b'{"t":%d,"body":%s}' % (t, body) for t, body in bodies]
    lines.insert(3, b"not json at all")
    lines.insert(5, b'{"t":1,"body":{"Price":1}}')  # no StockCode
    lines.insert(7, lines[0])  # a time earlier than the line before
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    feed, _ = await replay(tmp_path, [path])
    assert feed.updates == len(bodies) and feed.skipped == 3


def test_the_bodies_say_their_products_and_decimals(tmp_path: Path) -> None:
    bodies, _ = live_run(minutes=2)
    path = write_recording(tmp_path / "r.jsonl", bodies)
    shape = shape_of([path], "")
    assert sorted(shape.codes) == CODES
    assert shape.price_decimals["btcusdt"] == 2


def test_a_folder_of_day_files_is_read_in_time_order(tmp_path: Path) -> None:
    second = write_recording(tmp_path / "2026-12-02.jsonl.gz", [])
    first = write_recording(tmp_path / "2026-12-01.jsonl.gz", [])
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    assert replay_files(str(tmp_path)) == [first, second]
    assert replay_files(str(tmp_path / "*")) == [first, second]
    with pytest.raises(ReplayError, match="not a file a replay reads"):
        replay_files(str(notes))


@pytest.mark.slow
async def test_a_minute_of_recording_at_speed_10_takes_about_6_s(tmp_path: Path) -> None:
    """A loose bound, not a benchmark: pacing follows the recorded times."""
    bodies, _ = live_run(minutes=1)
    bodies = [(t, b) for t, b in bodies if t <= bodies[0][0] + 60_000]
    path = write_recording(tmp_path / "minute.jsonl", bodies)
    ingest = make_ingest(tmp_path, CODES)
    feed = ReplayFeed([path], CODES, speed=10)
    began = time.monotonic()
    await feed.run(ingest.sink(CODES))
    took = time.monotonic() - began
    ingest.writer.close()
    ingest.store.close()
    span = (feed.event_time - bodies[0][0]) / 1000
    assert 55 <= span <= 61
    assert span / 10 - 0.5 <= took <= span / 10 + 4, took
