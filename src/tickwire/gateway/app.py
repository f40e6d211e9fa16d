"""Wiring: builds one server process from its config, and runs it."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from importlib import resources
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from tickwire.catalogue import Catalogue, load_catalogue
from tickwire.config import Config
from tickwire.engine.memory import MemoryBus
from tickwire.engine.sqlite import SqliteStore
from tickwire.errors import NotAuthorized, RateLimited, TickwireError
from tickwire.feeds.base import Feed
from tickwire.feeds.sim import SimFeed
from tickwire.gateway import admin, http
from tickwire.gateway.guards import MessageBudget, Refusals, client_address, client_ip
from tickwire.gateway.lowlevel import JsonErrorAppRunner
from tickwire.gateway.pipeline import Pipeline
from tickwire.gateway.state import AppState
from tickwire.gateway.ws import Connection, Hub, handle_messages
from tickwire.market import Market, TimeZone
from tickwire.models import INTERVALS, WINDOW
from tickwire.wire import encode, error_body

log = logging.getLogger("tickwire.server")

PERSIST_EVERY = 0.25
"""Seconds between hand-overs of changed bars to the store (a kill -9 loses at most this)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _catalogue(config: Config) -> Catalogue:
    path = Path(config.server.catalogue) if config.server.catalogue else None
    catalogue = load_catalogue(path)
    return catalogue.with_products(config.products) if config.products else catalogue


def build_state(config: Config) -> AppState:
    """Everything but the sockets: catalogue, market, store (restored), bus, hub, feeds."""
    catalogue = _catalogue(config)
    tz = TimeZone(config.server.timezone)
    market = Market(catalogue.products.values(), tz)
    store = SqliteStore(Path(config.server.data_dir) / "tickwire.sqlite3")
    bus = MemoryBus()
    _restore(market, store)
    refusals = Refusals()
    hub = Hub(config.websocket, market.body, lambda code: code in market.products, refusals)
    bus.subscribe(hub.on_batch)
    pipeline = Pipeline(market, bus, store, wanted=hub.watched)
    feeds: list[Feed] = []
    for feed in config.feeds:
        products = [catalogue.products[c] for c in feed.codes if c in catalogue.products] \
            if feed.codes else list(catalogue.products.values())
        feeds.append(SimFeed(products, lambda code: market.products[code].hours, tz,
                             seed=feed.seed, rate=feed.rate, history=feed.history))
    return AppState(config, catalogue, market, store, bus, hub, pipeline, feeds, refusals)


def _restore(market: Market, store: SqliteStore) -> None:
    """Resume the market from the store: recent bars per interval and the day's statistics."""
    began = time.monotonic()
    if store.is_empty():
        return
    for code in market.products:
        for interval in INTERVALS:
            rows = store.read_bars(code, interval, WINDOW[interval], None)
            rows.reverse()
            market.restore(code, interval, rows)
    for code, stats in store.load_stats().items():
        if code in market.products:
            market.restore_stats(code, stats)
    log.info("restored from store", extra={"seconds": round(time.monotonic() - began, 3)})


# middleware ------------------------------------------------------------------------------

def error_response(status: int, msg: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=error_body(status, msg),
                        content_type="application/json", charset="utf-8", headers=headers)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error on every path is the protocol's JSON with status = code."""
    try:
        return await handler(request)
    except RateLimited as exc:
        refusals: Refusals = request.app["state"].refusals
        refusals.note("rate_limited", client_ip(request), exc.msg)
        retry = max(1, round(exc.retry_after + 0.499))
        return error_response(exc.status, exc.msg, {"Retry-After": str(retry)})
    except TickwireError as exc:
        if exc.status == 400:
            request.app["state"].refusals.note("bad_request", client_ip(request), exc.msg)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return error_response(exc.status, exc.msg, headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        msg = {404: f"not found: {request.path[:200]}",
               405: f"method {request.method} not allowed on {request.path[:200]}"}
        return error_response(exc.status, msg.get(exc.status, exc.reason))
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("internal error", extra={"path": request.path[:200]})
        return error_response(500, "internal error")


@web.middleware
async def guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every HTTP request and WebSocket handshake: who is it, and is it on the allow-list."""
    state: AppState = request.app["state"]
    ip = request["client_ip"] = client_address(request, state.trusted_proxies)
    if not state.allow_list.allows(ip):
        state.refusals.note("not_authorized", ip, request.path)
        raise NotAuthorized(f"IP {ip} is not authorized")
    return await handler(request)


# operational paths -----------------------------------------------------------------------

async def websocket(request: web.Request) -> web.StreamResponse:
    state: AppState = request.app["state"]
    settings = state.config.websocket
    ip = client_ip(request)
    cap = state.config.access.ws_connections_per_ip
    if state.ws_per_ip.get(ip, 0) >= cap:
        msg = f"too many WebSocket connections from {ip}: at most {cap} at once"
        state.refusals.note("ws_cap", ip, msg)
        raise TickwireError(msg, 429)
    state.ws_per_ip[ip] = state.ws_per_ip.get(ip, 0) + 1
    try:
        ws = web.WebSocketResponse(autoping=False, compress=False,
                                   max_msg_size=settings.max_message_bytes)
        await ws.prepare(request)
        transport = request.transport
        assert transport is not None
        _bound_kernel_buffer(transport, settings.max_pending_bytes)
        conn = Connection(ws, transport, ip, time.monotonic(),  # type: ignore[arg-type]
                          budget=MessageBudget(settings.messages_per_second))
        state.hub.add(conn)
        try:
            await handle_messages(state.hub, conn)
        finally:
            state.hub.remove(conn)
        return ws
    finally:
        left = state.ws_per_ip[ip] - 1
        if left:
            state.ws_per_ip[ip] = left
        else:
            del state.ws_per_ip[ip]


def _bound_kernel_buffer(transport: asyncio.BaseTransport, size: int) -> None:
    """Cap the kernel's send buffer too, so a stopped reader holds a bounded amount there."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, max(size, 65_536))


def _health(state: AppState) -> dict[str, object]:
    store = state.store
    limits = state.config.limits
    return {
        "status": "ok" if state.ready else "starting",
        "feeds": [f.status() for f in state.feeds],
        "store": {"path": str(store.path), "pending_bars": store.pending,
                  "rows_written": store.rows_written,
                  "last_flush_age_s": round(time.monotonic() - store.last_flush, 3)},
        "connections": len(state.hub.connections),
        "subscriptions": state.hub.subscription_count,
        "products": len(state.market.products),
        "limits": {"quote_per_code": limits.quote_per_code,
                   "kline_per_code": limits.kline_per_code,
                   "category": limits.category, "symbols": limits.symbols,
                   "ws_connections_per_ip": state.config.access.ws_connections_per_ip},
    }


async def healthz(request: web.Request) -> web.Response:
    state: AppState = request.app["state"]
    return web.Response(status=200 if state.ready else 503, body=encode(_health(state)),
                        content_type="application/json")


class _Collector:
    def __init__(self, state: AppState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        state = self._state
        hub = state.hub
        yield GaugeMetricFamily("tickwire_ws_connections", "Open WebSocket connections",
                                value=len(hub.connections))
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
        yield CounterMetricFamily("tickwire_updates", "Feed updates received",
                                  value=state.pipeline.updates_in)
        refused = CounterMetricFamily("tickwire_refused", "Refusals by kind", labels=["kind"])
        for kind in ("not_authorized", "rate_limited", "bad_request", "ws_cap", "ws_flood",
                     "slow_reader", "idle", "admin_auth"):
            refused.add_metric([kind], state.refusals.counts[kind])
        yield refused
        yield GaugeMetricFamily("tickwire_store_pending_bars", "Bars waiting to be written",
                                value=state.store.pending)
        yield GaugeMetricFamily("tickwire_store_lag_seconds", "Seconds since the last write",
                                value=time.monotonic() - state.store.last_flush)


async def metrics(request: web.Request) -> web.Response:
    registry: CollectorRegistry = request.app["registry"]
    return web.Response(body=generate_latest(registry),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


_OPENAPI = resources.files("tickwire").joinpath("openapi.json")


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=_OPENAPI.read_bytes(), content_type="application/json")


# lifecycle -------------------------------------------------------------------------------

async def _run_feed(state: AppState, feed: Feed) -> None:
    try:
        await feed.run(state.pipeline)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("feed stopped", extra={"feed": feed.name})


async def _mark_ready(state: AppState) -> None:
    while not all(f.status().get("state") == "live" for f in state.feeds):
        await asyncio.sleep(0.05)
    state.pipeline.persist()
    state.ready = True
    log.info("ready")


async def _follow_allow_list(state: AppState, every: float = 2.0) -> None:
    """Pick up allow-list changes made in the store by another process (`tickwire allow`)."""
    while True:
        await asyncio.sleep(every)
        try:
            state.allow_list.sync(await asyncio.to_thread(state.store.allow_entries))
        except Exception:
            log.exception("reading the allow-list failed")


async def _start(app: web.Application) -> None:
    state: AppState = app["state"]
    for feed in state.feeds:
        state.tasks.append(asyncio.create_task(_run_feed(state, feed)))
    state.tasks.append(asyncio.create_task(state.pipeline.persist_forever(PERSIST_EVERY)))
    state.tasks.append(asyncio.create_task(state.hub.sweep_forever()))
    state.tasks.append(asyncio.create_task(_follow_allow_list(state)))
    state.tasks.append(asyncio.create_task(_mark_ready(state)))


async def _stop(app: web.Application) -> None:
    state: AppState = app["state"]
    await state.hub.close_all()
    for task in state.tasks:
        task.cancel()
    await asyncio.gather(*state.tasks, return_exceptions=True)
    state.pipeline.persist()
    await asyncio.to_thread(state.store.close)
    log.info("stopped; store flushed")


def create_app(state: AppState) -> web.Application:
    app = web.Application(middlewares=[errors_middleware, guard_middleware],
                          client_max_size=64 * 1024)
    app["state"] = state
    registry = CollectorRegistry()
    registry.register(_Collector(state))  # type: ignore[arg-type]
    app["registry"] = registry
    http.add_routes(app)
    admin.add_routes(app)
    app.router.add_get("/ws", websocket)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)
    app.on_startup.append(_start)
    app.on_shutdown.append(_stop)
    return app


async def serve(config: Config) -> None:
    """Run the server until SIGTERM or SIGINT, then shut down cleanly."""
    state = build_state(config)
    app = create_app(state)
    runner = JsonErrorAppRunner(app, access_log=None, handle_signals=False,
                                shutdown_timeout=5.0,
                                keepalive_timeout=config.server.http_idle_timeout)
    await runner.setup()
    host = config.server.host
    try:
        for port in [config.server.port, *config.server.extra_ports]:
            await web.TCPSite(runner, host, port, reuse_address=True).start()
    except OSError as exc:
        await runner.cleanup()
        hint = ""
        if exc.errno == errno.EACCES and port < 1024:
            hint = f" (ports below 1024 need root: try --port {port + 7000})"
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}{hint}") from None
    log.info("listening", extra={"url": f"http://{host}:{config.server.port}",
                                 "ws": f"ws://{host}:{config.server.port}/ws"})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    with contextlib.suppress(Exception):
        await runner.cleanup()
