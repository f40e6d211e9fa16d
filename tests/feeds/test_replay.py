"""Replay's parts: which files, what they hold, and pacing at a set speed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.ingest.test_pipeline import make_ingest
from tickwire.feeds.base import FeedState
from tickwire.feeds.replay import ReplayError, ReplayFeed, TradesCsv, replay_files, shape_of
from tickwire.models import BUY, SELL

HEADER = "time_ms,price,size,side\n"


def write(path: Path, lines: list[str], header: str = HEADER) -> Path:
    path.write_text(header + "".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_a_file_a_folder_or_a_glob_in_name_order(tmp_path: Path) -> None:
    b = write(tmp_path / "b.csv", [])
    a = write(tmp_path / "a.csv", [])
    (tmp_path / "notes.txt").write_text("x")
    assert replay_files(str(a)) == [a]
    assert replay_files(str(tmp_path)) == [a, b]
    assert replay_files(str(tmp_path / "*.csv")) == [a, b]
    with pytest.raises(ReplayError, match="no file to replay at"):
        replay_files(str(tmp_path / "nothing*.csv"))


def test_the_data_says_its_products_and_decimals(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", ["1,0.00134500,12.5,buy,xrpeth",
                                      "2,0.0013,3,sell,ethbtc", "3,0.05,1.25,buy,ethbtc"],
                 header="time_ms,price,size,side,code\n")
    shape = shape_of([path], "")
    assert shape.codes == ["xrpeth", "ethbtc"]
    assert shape.price_decimals == {"xrpeth": 6, "ethbtc": 4}
    assert shape.size_decimals == {"xrpeth": 1, "ethbtc": 2}


def test_columns_are_found_by_name_and_a_short_line_is_skipped_by_its_line(
        tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", ["buy,ethbtc,0.05,x,1.25,1000",
                                      "",  # a blank line: nothing, not even a skip
                                      "sell,,0.06,y,2,2000",  # no code: the feed's
                                      "sell,ethbtc,0.07",  # a short line
                                      " SELL ,ethbtc,0.080,,3,3000,more,fields"],
                 header="side,code,price,note,size,time_ms\n")
    source = TradesCsv(path, "xrpeth")
    updates = [(u.code, u.ts, u.price, u.trades) for u in source.updates()]
    assert updates == [("ethbtc", 1000, 0.05, [(0.05, 1.25, BUY)]),
                       ("xrpeth", 2000, 0.06, [(0.06, 2.0, SELL)]),
                       ("ethbtc", 3000, 0.08, [(0.08, 3.0, SELL)])]
    assert source.skipped.count == 1
    assert source.skipped.first == "line 5: a line that is not time_ms,price,size,side"
    shape = shape_of([path], "xrpeth")
    assert shape.codes == ["ethbtc", "xrpeth"]
    assert shape.price_decimals == {"ethbtc": 2, "xrpeth": 2}
    assert shape.size_decimals == {"ethbtc": 2, "xrpeth": 0}


async def test_a_set_speed_paces_by_the_datas_own_time(tmp_path: Path) -> None:
    """A minute of trades at speed 60 takes about a second (a loose bound, not a benchmark)."""
    start = 1_700_000_000_000
    path = write(tmp_path / "t.csv", [f"{start + i * 1000},{100 + i % 7},1,buy"
                                      for i in range(61)])
    ingest = make_ingest(tmp_path, ["btcusdt"])
    feed = ReplayFeed([path], ["btcusdt"], "btcusdt", speed=60)
    began = time.monotonic()
    await asyncio.wait_for(feed.run(ingest.sink(["btcusdt"])), 30)
    took = time.monotonic() - began
    assert 0.9 <= took < 10, took
    assert feed.updates == 61 and feed.event_time == start + 60_000
    series = ingest.market.products["btcusdt"].series["1m"]
    assert series.builder.forming() is not None
    assert feed.state is FeedState.LIVE  # the supervisor marks it finished when run returns
    ingest.writer.close()
    ingest.store.close()


async def test_a_loop_plays_again_with_the_times_moved_on(tmp_path: Path) -> None:
    start = 1_700_000_000_000
    path = write(tmp_path / "t.csv", [f"{start + i * 30_000},{100 + i},1,buy" for i in range(5)])
    ingest = make_ingest(tmp_path, ["btcusdt"])
    feed = ReplayFeed([path], ["btcusdt"], "btcusdt", speed=0, loop=True)
    task = asyncio.create_task(feed.run(ingest.sink(["btcusdt"])))
    while feed.rounds < 3:
        await asyncio.sleep(0.001)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    span = 4 * 30_000 + 1
    assert feed.event_time >= start + 4 * 30_000 + 2 * span  # the third round's times
    bars = [row for _, row in ingest.market.products["btcusdt"].series["1m"].recent]
    assert [b[0] for b in bars] == sorted(b[0] for b in bars)  # later rounds are not late
    assert feed.updates >= 15
    ingest.writer.close()
    ingest.store.close()
