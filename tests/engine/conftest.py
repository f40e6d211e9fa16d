"""Every engine, each with an ingest writing through it, for the one contract suite."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tickwire.catalogue import Catalogue, load_catalogue
from tickwire.engine.base import Engine
from tickwire.engine.memory import MemoryEngine
from tickwire.engine.sqlite import SqliteStore
from tickwire.ingest.pipeline import Ingest
from tickwire.ingest.writer import StoreWriter
from tickwire.market import Market, TimeZone

CODES = ["btcusdt", "ethusdt", "hf_GC"]
ENGINES = ["memory"]
"""Engine kinds the contract runs against (a new engine adds its kind and its case below)."""


@dataclass
class Harness:
    """An engine and the ingest that writes through it."""

    engine: Engine
    ingest: Ingest

    def store_now(self) -> None:
        """Hand the ingest's changes to the store and write them."""
        self.ingest.persist()
        self.ingest.writer.flush()


def _catalogue() -> Catalogue:
    shipped = load_catalogue(None)
    return Catalogue(shipped.categories, [shipped.products[c] for c in CODES])


@pytest.fixture(params=ENGINES)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    catalogue = _catalogue()
    market = Market(catalogue.products.values(), TimeZone("Asia/Shanghai"))
    store = SqliteStore(tmp_path / "tickwire.sqlite3")
    if request.param == "memory":
        engine: Engine = MemoryEngine(catalogue, market, store)
    else:  # pragma: no cover - every kind of ENGINES is built above
        raise AssertionError(request.param)
    ingest = Ingest(market, engine, store, StoreWriter(store))
    yield Harness(engine, ingest)
    ingest.writer.close()
    store.close()
