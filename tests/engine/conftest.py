"""Every engine, each with an ingest writing through it, for the one contract suite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest

from tests.redis_server import RedisServer, unique_prefix
from tickwire.catalogue import Catalogue, load_catalogue
from tickwire.config import EngineConfig
from tickwire.engine.base import Engine, IngestStatus
from tickwire.engine.local_gateway import LocalGateway
from tickwire.engine.local_ingest import LocalIngest
from tickwire.engine.memory import MemoryEngine
from tickwire.engine.redis import RedisEngine
from tickwire.engine.sqlite import SqliteStore
from tickwire.ingest.pipeline import Ingest
from tickwire.ingest.writer import StoreWriter
from tickwire.market import Market, TimeZone

CODES = ["btcusdt", "ethusdt", "hf_GC"]
ENGINES = ["memory", "local", "redis"]
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

    async def settle(self) -> None:
        """Until what the ingest handed to the engine is where the gateway reads it (at
        once in one process; a shared engine writes and delivers it in the background)."""
        if isinstance(self.engine, RedisEngine | Split):
            await self.engine.settle()


class Split:
    """The local engine's two halves in one process, joined by a real Unix socket: the
    ingest's calls go to the ingest's half, the rest to the gateway's."""

    kind = "local"

    def __init__(self, ingest: LocalIngest, gateway: LocalGateway) -> None:
        self.ingest_side, self.gateway = ingest, gateway

    def __getattr__(self, name: str) -> object:
        if name in ("publish", "report", "bars", "restored"):
            return getattr(self.ingest_side, name)
        return getattr(self.gateway, name)

    def watched(self, code: str) -> bool:
        """As one process in both roles sees it: the gateway's own watch counts at once
        (its word to the ingest is on its way)."""
        return self.ingest_side.watched(code) or code in self.gateway._watching

    async def settle(self) -> None:
        """A call answered: what the ingest wrote before its answer has arrived."""
        await self.gateway.allow_list()

    async def status(self) -> IngestStatus | None:
        await self.settle()
        return await self.gateway.status()

    async def start(self) -> None:
        await self.ingest_side.start()
        await self.gateway.start()

    async def close(self) -> None:
        await self.gateway.close()
        await self.ingest_side.close()


def _catalogue() -> Catalogue:
    shipped = load_catalogue(None)
    return Catalogue(shipped.categories, [shipped.products[c] for c in CODES])


def redis_settings(server: RedisServer, role: str = "all") -> EngineConfig:
    """A Redis engine's settings on `server`, under a prefix of its own, short leases."""
    return EngineConfig(kind="redis", url=server.url, role=role,  # type: ignore[arg-type]
                        prefix=unique_prefix(), lease=2)


@pytest.fixture(params=ENGINES)
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    catalogue = _catalogue()
    market = Market(catalogue.products.values(), TimeZone("Asia/Shanghai"))
    store = SqliteStore(tmp_path / "tickwire.sqlite3")
    if request.param == "memory":
        engine: Engine = MemoryEngine(catalogue, market, store)
    elif request.param == "local":
        socket_path = tmp_path / "engine.sock"
        engine = cast(Engine, Split(LocalIngest(socket_path, catalogue, market, store),
                                    LocalGateway(socket_path, catalogue)))
    elif request.param == "redis":  # one process in both roles, through a real Redis
        server = request.getfixturevalue("redis_server")
        engine = RedisEngine(redis_settings(server), catalogue, market, store)
    else:  # pragma: no cover - every kind of ENGINES is built above
        raise AssertionError(request.param)
    ingest = Ingest(market, engine, store, StoreWriter(store))
    await engine.start()
    yield Harness(engine, ingest)
    await engine.close()
    ingest.writer.close()
    store.close()
