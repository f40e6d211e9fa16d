"""Everything one server process holds, in one place for the handlers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from tickwire.catalogue import Catalogue
from tickwire.config import Config
from tickwire.engine.base import Bus
from tickwire.engine.sqlite import SqliteStore
from tickwire.feeds.base import Feed
from tickwire.gateway.guards import (
    AllowList,
    Network,
    RateLimiter,
    Refusals,
    client_ip,
    parse_network,
)
from tickwire.gateway.pipeline import Pipeline
from tickwire.gateway.ws import Hub
from tickwire.market import Market
from tickwire.wire import encode, envelope


@dataclass(eq=False)
class AppState:
    config: Config
    catalogue: Catalogue
    market: Market
    store: SqliteStore
    bus: Bus
    hub: Hub
    pipeline: Pipeline
    feeds: list[Feed]
    refusals: Refusals
    limiter: RateLimiter = field(default_factory=RateLimiter)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    ready: bool = False
    categories_json: bytes = b""
    allow_list: AllowList = field(init=False)
    trusted_proxies: list[Network] = field(init=False)
    ws_per_ip: dict[str, int] = field(default_factory=dict)
    """Open WebSockets per client IP (entries removed at zero)."""

    def __post_init__(self) -> None:
        self.categories_json = envelope(encode({"list": self.catalogue.categories}))
        access = self.config.access
        self.allow_list = AllowList(access.allow)
        self.allow_list.sync(self.store.allow_entries())
        self.trusted_proxies = [parse_network(t) for t in access.trusted_proxies]

    def known(self, code: str) -> bool:
        return code in self.market.products

    def latest(self, code: str) -> bytes | None:
        return self.market.body(code)

    def limit_quotes(self, request: web.Request, codes: list[str]) -> None:
        ip = client_ip(request)
        self.limiter.check([(ip, "quote", c) for c in codes], self.config.limits.quote_per_code,
                           codes)

    def limit_klines(self, request: web.Request, code: str) -> None:
        self.limiter.check([(client_ip(request), "kline", code)],
                           self.config.limits.kline_per_code, [code])

    def limit_simple(self, request: web.Request, path: str) -> None:
        limit = self.config.limits.category if path == "category" else self.config.limits.symbols
        self.limiter.check([(client_ip(request), path)], limit, [path])
