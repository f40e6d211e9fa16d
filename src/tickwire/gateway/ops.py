"""Operations: `/healthz`, `/metrics` (Prometheus), `/openapi.json`, and the root `/`
(a redirect to the market page)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from importlib import resources

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from tickwire.engine.base import IngestStatus
from tickwire.feeds.base import FeedState
from tickwire.gateway.guards import is_websocket
from tickwire.gateway.http import RULES
from tickwire.gateway.market import MARKET_PATH
from tickwire.gateway.responses import json_response
from tickwire.gateway.state import GATEWAY, Gateway
from tickwire.gateway.ws import websocket
from tickwire.wire import encode

REFUSAL_KINDS = ("not_authorized", "rate_limited", "bad_request", "ws_cap", "ws_flood",
                 "slow_reader", "idle", "admin_auth")

_REGISTRY = web.AppKey("registry", CollectorRegistry)
_OPENAPI = resources.files("tickwire").joinpath("openapi.json")


def state_of(ingest: IngestStatus | None, engine: dict[str, object]) -> str:
    """starting (503) until the ingest is ready; then ok, or degraded while a feed is down,
    the store or the recorder cannot write, or the engine is not well (`"ok": False` in its
    health: Redis unreachable, the ingest silent), still serving what it has."""
    if ingest is None or not ingest.ready:
        return "starting"
    if engine.get("ok") is False or not (ingest.store_ok and ingest.record_ok) or any(
            f.get("state") == "down" for f in ingest.feeds):
        return "degraded"
    return "ok"


_DIRECTORIES = re.compile(r"(?<![\w.:/~-])/(?:[^\s/'\":,;()\[\]{}]+/)+(?=[^\s/'\":,;()\[\]{}])")
"""The folders of an absolute path (`/srv/data/` of `/srv/data/trades.csv`), not of a URL."""
_ERRORS = ("error", "last_error")


def without_folders(part: dict[str, object]) -> dict[str, object]:
    """`part` of /healthz with its error texts naming files by their names alone: what
    failed stays clear, where the server keeps its files is not told."""
    return {key: _DIRECTORIES.sub("", value) if key in _ERRORS and isinstance(value, str)
            else value for key, value in part.items()}


def health(gateway: Gateway, ingest: IngestStatus | None) -> dict[str, object]:
    limits = gateway.config.limits
    engine = gateway.engine.health()
    return {
        "status": state_of(ingest, engine),
        "engine": engine,
        "feeds": [without_folders(feed) for feed in ingest.feeds] if ingest else [],
        "store": without_folders(ingest.store) if ingest else {},
        "record": without_folders(ingest.record) if ingest else {},
        "connections": len(gateway.hub.connections),
        "subscriptions": gateway.hub.subscription_count,
        "products": len(gateway.engine.catalogue().products),
        "limits": {"quote_per_code": limits.quote_per_code,
                   "kline_per_code": limits.kline_per_code,
                   "category": limits.category, "symbols": limits.symbols,
                   "ws_connections_per_ip": gateway.config.access.ws_connections_per_ip},
    }


async def healthz(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    ingest = await gateway.engine.status()
    answer = health(gateway, ingest)
    return json_response(request, encode(answer),
                         status=503 if answer["status"] == "starting" else 200)


class _Collector:
    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self.ingest: IngestStatus | None = None
        """The ingest's status as of the scrape (read before `generate_latest`)."""
        self.tasks = 0
        """The event loop's tasks as of the scrape (counted in the loop's thread)."""

    def collect(self) -> Iterator[Metric]:
        gateway, ingest = self._gateway, self.ingest
        hub = gateway.hub
        yield GaugeMetricFamily("tickwire_ws_connections", "Open WebSocket connections",
                                value=len(hub.connections))
        yield GaugeMetricFamily("tickwire_tasks", "Tasks of the server's event loop (steady "
                                "under steady load; growing, a leak)", value=self.tasks)
        yield GaugeMetricFamily("tickwire_subscriptions", "Codes subscribed, over connections",
                                value=hub.subscription_count)
        yield CounterMetricFamily("tickwire_deliveries", "Quote pushes queued to clients",
                                  value=hub.stats.deliveries)
        yield CounterMetricFamily("tickwire_conflated", "Pushes replaced by newer ones for "
                                  "slow readers", value=hub.stats.conflated)
        closed = CounterMetricFamily("tickwire_ws_closed", "Connections closed by the server",
                                     labels=["reason"])
        closed.add_metric(["slow_reader"], hub.stats.slow_closed)
        closed.add_metric(["idle"], hub.stats.idle_closed)
        yield closed
        yield CounterMetricFamily("tickwire_ws_ignored", "Client messages ignored without a "
                                  "reply (unknown codes, malformed JSON, ... on a connection "
                                  "without ?errors=1)", value=hub.stats.ignored)
        refused = CounterMetricFamily("tickwire_refused", "Refusals by kind", labels=["kind"])
        for kind in REFUSAL_KINDS:
            refused.add_metric([kind], gateway.refusals.counts[kind])
        yield refused
        requests = CounterMetricFamily("tickwire_requests", "Requests of each protocol path, "
                                       "rate limited or not", labels=["path"])
        for path in RULES:
            requests.add_metric([path.lstrip("/")], gateway.requests[path])
        yield requests
        yield from engine_metrics(gateway.engine.health())
        if ingest is not None:
            yield from ingest_metrics(ingest)


def ingest_metrics(ingest: IngestStatus) -> Iterator[Metric]:
    """The ingest's updates, feeds, store and recorder, from its status."""
    yield CounterMetricFamily("tickwire_updates", "Feed updates received",
                              value=ingest.updates_in)
    yield from feed_metrics(ingest.feeds)
    store = ingest.store
    yield GaugeMetricFamily("tickwire_store_pending_bars", "Bars waiting to be written",
                            value=_number(store.get("pending_bars")))
    yield GaugeMetricFamily("tickwire_store_lag_seconds", "Seconds since the last write",
                            value=_number(store.get("last_write_age_s")))
    yield CounterMetricFamily("tickwire_store_dropped_bars", "Bars dropped at the store "
                              "writer's bound", value=_number(store.get("dropped_bars")))
    yield GaugeMetricFamily("tickwire_store_failing", "1 while the store cannot write",
                            value=0 if ingest.store_ok else 1)
    for name, key, what in _RECORD_COUNTERS:
        yield CounterMetricFamily(name, what, value=_number(ingest.record.get(key)))


_ENGINE_COUNTERS = (
    ("redis", "disconnects", "tickwire_engine_redis_disconnects",
     "Times the connection to Redis was lost"),
    ("gateway", "batches", "tickwire_engine_bus_batches",
     "Batches of updates received from the bus"),
    ("gateway", "gaps", "tickwire_engine_bus_gaps",
     "Batches found missing on the bus (each followed by a resync)"),
    ("gateway", "resyncs", "tickwire_engine_resyncs",
     "Reads of every newest quote after a gap, a restart or a reconnect"),
    ("ingest", "batches", "tickwire_engine_published_batches",
     "Batches of updates published on the bus"),
    ("ingest", "dropped", "tickwire_engine_dropped_updates",
     "Updates not published while Redis was away or slow (the newest quotes stay)"))


def engine_metrics(health: dict[str, object]) -> Iterator[Metric]:
    """The engine's state and counters, from its health (those it has)."""
    yield GaugeMetricFamily("tickwire_engine_ok", "1 while the engine is well (a shared "
                            "engine: Redis reachable, the ingest reporting)",
                            value=0 if health.get("ok") is False else 1)
    redis = health.get("redis")
    if isinstance(redis, dict):
        yield GaugeMetricFamily("tickwire_engine_redis_connected", "1 while Redis answers",
                                value=1 if redis.get("connected") else 0)
    for part, key, name, what in _ENGINE_COUNTERS:
        section = health.get(part)
        if isinstance(section, dict) and key in section:
            yield CounterMetricFamily(name, what, value=_number(section[key]))


_RECORD_COUNTERS = (
    ("tickwire_record_lines", "lines_written", "Lines written to the recording"),
    ("tickwire_record_dropped_lines", "dropped_lines",
     "Lines dropped at the recorder's bound while it could not write"),
    ("tickwire_record_errors", "errors", "Failed recording writes (each retried)"))


def feed_metrics(feeds: list[dict[str, object]]) -> Iterator[Metric]:
    """Each feed's state (a 0/1 gauge per state, the one it is in 1), how long it has been
    in it, its updates in all and per second, its restarts; from its `/healthz` entry."""
    state = GaugeMetricFamily("tickwire_feed_state", "1 for the state each feed is in, 0 for "
                              "the others", labels=["feed", "kind", "state"])
    seconds = GaugeMetricFamily("tickwire_feed_state_seconds", "Seconds each feed has been "
                                "in its state", labels=["feed"])
    updates = CounterMetricFamily("tickwire_feed_updates", "Updates each feed handed to the "
                                  "ingest", labels=["feed"])
    per_second = GaugeMetricFamily("tickwire_feed_updates_per_second", "Updates each feed "
                                   "handed over per second, over the last 10 s", labels=["feed"])
    restarts = CounterMetricFamily("tickwire_feed_restarts", "Restarts of each feed after it "
                                   "failed", labels=["feed"])
    for feed in feeds:
        name, now = str(feed.get("name", "")), feed.get("state")
        for one in FeedState:
            state.add_metric([name, str(feed.get("kind", "")), one], 1 if one == now else 0)
        seconds.add_metric([name], _number(feed.get("in_state_s")))
        updates.add_metric([name], _number(feed.get("updates")))
        per_second.add_metric([name], _number(feed.get("updates_per_s")))
        restarts.add_metric([name], _number(feed.get("restarts")))
    yield from (state, seconds, updates, per_second, restarts)


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


async def metrics(request: web.Request) -> web.Response:
    collector = request.app[_COLLECTOR]
    collector.ingest = await request.app[GATEWAY].engine.status()
    collector.tasks = len(asyncio.all_tasks())
    return web.Response(body=generate_latest(request.app[_REGISTRY]),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def root(request: web.Request) -> web.StreamResponse:
    """`/`: a WebSocket upgrade is served as `/ws`; anything else is sent to the market page
    (health checks of deployed clients fetch the root, follow redirects and call anything
    but 2xx or 3xx down)."""
    if is_websocket(request):
        return await websocket(request)
    raise web.HTTPFound(MARKET_PATH.lstrip("/"))


async def openapi(request: web.Request) -> web.Response:
    return json_response(request, _OPENAPI.read_bytes())


_COLLECTOR = web.AppKey("collector", _Collector)


def add_routes(app: web.Application, gateway: Gateway) -> None:
    collector = _Collector(gateway)
    registry = CollectorRegistry()
    registry.register(collector)  # type: ignore[arg-type]
    app[_REGISTRY] = registry
    app[_COLLECTOR] = collector
    app.router.add_get("/", root)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)
