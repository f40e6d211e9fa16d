"""Each feed has its own clock: advancing one closes only its own products' bars."""

from __future__ import annotations

from pathlib import Path

from tests.ingest.test_pipeline import make_ingest
from tickwire.models import BUY, Update

NOW = 1_763_431_200_000  # Tuesday 2025-11-18 10:00 in Shanghai: the live feed's clock
THEN = 1_580_000_000_000  # 2020-01-26: a replay's clock, years behind
MINUTE = 60_000


def tick(code: str, ts: int, price: float) -> Update:
    return Update(code, ts, price, None, None, [(price, 0.5, BUY)])


def test_two_feeds_on_different_clocks_close_only_their_own_bars(tmp_path: Path) -> None:
    ingest = make_ingest(tmp_path, ["btcusdt", "ethusdt"])
    live, replay = ingest.sink(["btcusdt"]), ingest.sink(["ethusdt"])
    market = ingest.market
    eth = market.products["ethusdt"].series["1m"]
    start = eth.builder.interval.floor(THEN)

    replay.publish([tick("ethusdt", start + 1_000, 50.0)])
    replay.advance(start + 1_000)
    live.publish([tick("btcusdt", NOW, 100.0)])
    live.advance(NOW + 5 * MINUTE)  # years ahead of the replay
    # the replay's minute is still forming: its next update is not dropped as late
    replay.publish([tick("ethusdt", start + 30_000, 55.0), tick("ethusdt", start + 45_000, 49.0)])
    assert eth.builder.forming() == (start, 50.0, 55.0, 49.0, 49.0, 1.5)
    assert not eth.recent  # no bar closed, no flat bars up to the live clock
    replay.advance(start + MINUTE)
    assert [row for _, row in eth.recent] == [(start, 50.0, 55.0, 49.0, 49.0, 1.5)]
    # and the live feed's bars were closed by its own clock
    btc = market.products["btcusdt"].series["1m"]
    assert btc.recent and btc.builder.forming() is not None
    assert btc.builder.forming()[0] == NOW + 5 * MINUTE  # type: ignore[index]
    ingest.writer.close()
    ingest.store.close()


def test_a_sink_advances_the_products_of_its_feed(tmp_path: Path) -> None:
    ingest = make_ingest(tmp_path, ["btcusdt", "ethusdt"])
    sink = ingest.sink(["ethusdt", "not-in-the-catalogue"])
    assert sink.codes == ["ethusdt"]
    sink.advance(NOW)
    assert sink.clock == NOW
    ingest.writer.close()
    ingest.store.close()


def test_each_feed_counts_the_updates_it_hands_over(tmp_path: Path) -> None:
    ingest = make_ingest(tmp_path, ["btcusdt", "ethusdt"])
    live, replay = ingest.sink(["btcusdt"]), ingest.sink(["ethusdt"])
    live.publish([tick("btcusdt", NOW, 100.0), tick("btcusdt", NOW + 1, 101.0)])
    replay.publish([tick("ethusdt", THEN, 50.0)])
    live.publish([tick("btcusdt", NOW + 2, 102.0)])
    assert (live.updates, replay.updates, ingest.updates_in) == (3, 1, 4)
    ingest.writer.close()
