"""The simulator fills what the store lacks, per product and interval, at every start."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.ingest.test_pipeline import make_ingest
from tickwire.feeds.base import FeedState
from tickwire.feeds.sim import SimFeed
from tickwire.market.clock import now_ms
from tickwire.market.quotes import DayStats
from tickwire.models import INTERVALS, WINDOW

MINUTE = 60_000


async def run_until_live(feed: SimFeed, sink: object) -> None:
    task = asyncio.create_task(feed.run(sink))  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while feed.state is not FeedState.LIVE:
        assert loop.time() < deadline and not task.done(), "the feed did not go live"
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_only_the_lacking_intervals_are_filled_and_the_quote_goes_on(
        tmp_path: Path) -> None:
    start = now_ms() // MINUTE * MINUTE
    first = make_ingest(tmp_path, ["btcusdt"])
    stored_1m = [(start - (10 - i) * MINUTE, 100.0, 101.0, 99.0, 100.5, 1.0) for i in range(10)]
    first.load_history("btcusdt", {"1m": stored_1m},
                       DayStats(day=0, ts=start - 1, price=100.5, open=100.0, high=101.0,
                                low=99.0, last_close=100.0, volume=10.0))
    first.persist()
    first.writer.close()
    first.store.close()

    ingest = make_ingest(tmp_path, ["btcusdt"])
    ingest.restore()
    assert ingest.missing_history("btcusdt") == frozenset(INTERVALS) - {"1m"}
    products = [ingest.market.products["btcusdt"].product]
    feed = SimFeed(products, lambda code: ingest.market.products[code].hours,
                   ingest.market.tz, rate=50.0)
    await run_until_live(feed, ingest.sink(["btcusdt"]))
    assert ingest.missing_history("btcusdt") == frozenset()
    series = ingest.market.products["btcusdt"].series
    kept_1m = [row for _, row in series["1m"].recent]
    assert kept_1m[:9] == stored_1m[:9]  # what was stored is kept, not drawn again
    for interval in INTERVALS[1:]:
        assert len(series[interval].recent) >= WINDOW[interval] - 1, interval
    quote = ingest.market.products["btcusdt"].quote.stats
    assert abs(quote.price / 100.5 - 1) < 0.05  # the live quote goes on from the stored one
    ingest.writer.close()
    ingest.store.close()


async def test_a_second_start_fills_nothing(tmp_path: Path) -> None:
    first = make_ingest(tmp_path, ["ethusdt"])
    products = [first.market.products["ethusdt"].product]
    feed = SimFeed(products, lambda code: first.market.products[code].hours, first.market.tz)
    await run_until_live(feed, first.sink(["ethusdt"]))
    first.persist()
    first.writer.close()
    first.store.close()
    again = make_ingest(tmp_path, ["ethusdt"])
    again.restore()
    assert again.missing_history("ethusdt") == frozenset()
    again.writer.close()
    again.store.close()
