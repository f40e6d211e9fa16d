"""The store ends with the same bars whatever the batches: updates handed over in any
batches, the clock advanced after any of them, changes persisted after any of them, give
the stored bars that one batch and one write give, and those are the market's own."""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzzing import fuzz_settings
from tickwire.catalogue import Catalogue, load_catalogue
from tickwire.engine.memory import MemoryEngine
from tickwire.engine.sqlite import SqliteStore
from tickwire.ingest.pipeline import Ingest
from tickwire.ingest.writer import StoreWriter
from tickwire.market import Market, TimeZone
from tickwire.market.bars import BarRow
from tickwire.models import INTERVALS, Update

pytestmark = pytest.mark.fuzz

CODES = ["btcusdt", "hf_GC"]
"""One product of 24/7, one of 24/5."""
START = int(datetime(2024, 3, 1, 20, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1000)
CASES = (25, 1000)
BUY = 2

ticks = st.lists(st.tuples(st.sampled_from(CODES),
                           st.one_of(st.integers(0, 20_000), st.integers(0, 3_600_000),
                                     st.integers(0, 2 * 86_400_000)),
                           st.integers(100, 10**7), st.integers(1, 10_000)),
                 min_size=1, max_size=60)
"""(code, ms after the previous update, price in cents, size in hundredths)"""
batching = st.lists(st.tuples(st.booleans(), st.booleans()), min_size=60, max_size=60)
"""After each update: end the batch there (advance the clock), persist there."""


def catalogue() -> Catalogue:
    shipped = load_catalogue(None)
    return Catalogue(shipped.categories, [shipped.products[c] for c in CODES])


def stored_bars(updates: list[Update], cuts: list[tuple[bool, bool]] | None,
                folder: Path) -> dict[tuple[str, str], list[BarRow]]:
    """Run the updates through an ingest into a fresh store; every stored bar, and check
    that the market holds the same."""
    products = catalogue()
    market = Market(products.products.values(), TimeZone("Asia/Shanghai"))
    store = SqliteStore(folder / "tickwire.sqlite3")
    ingest = Ingest(market, MemoryEngine(products, market, store), store, StoreWriter(store))
    sink = ingest.sink(CODES)
    batch: list[Update] = []
    try:
        for i, update in enumerate(updates):
            batch.append(update)
            cut, persist = cuts[i] if cuts else (False, False)
            if cut:
                sink.publish(batch)
                sink.advance(update.ts)
                batch = []
            if persist:
                ingest.persist()
                ingest.writer.flush()
        sink.publish(batch)
        sink.advance(updates[-1].ts)
        ingest.persist()
        ingest.writer.flush()
        bars = {(code, interval): store.read_bars(code, interval, 100_000, None)
                for code in CODES for interval in INTERVALS}
        for (code, interval), rows in bars.items():
            series = market.products[code].series[interval]
            in_memory = [series.encode(row) for row in rows[:series.recent.maxlen or 0]]
            assert series.newest(len(in_memory))[0] == in_memory, (code, interval)
        return bars
    finally:
        ingest.writer.close()
        store.close()


@fuzz_settings(*CASES)
@given(raw=ticks, cuts=batching)
def test_any_batches_store_the_same_bars(raw: list[tuple[str, int, int, int]],
                                         cuts: list[tuple[bool, bool]]) -> None:
    updates, ts = [], START
    for code, step, cents, size in raw:
        ts += step
        price = cents / 100
        updates.append(Update(code, ts, price, trades=[(price, size / 100, BUY)]))
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as many:
        assert stored_bars(updates, cuts, Path(many)) == stored_bars(updates, None, Path(one))
