"""One server process: the ingest and the gateway, wired together over the engine that the
config picks. With the CLI, the only place that names concrete engines and feeds."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import signal
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from aiohttp import web

from tickwire.catalogue import Catalogue, load_catalogue
from tickwire.config import MAX_UNIX_PATH, Config, ConfigError, listen_address
from tickwire.datadir import DataDirLock
from tickwire.engine.base import Engine
from tickwire.engine.local_gateway import LocalGateway
from tickwire.engine.local_ingest import LocalIngest
from tickwire.engine.memory import MemoryEngine
from tickwire.engine.sqlite import SqliteStore
from tickwire.feeds.base import Feed
from tickwire.feeds.factory import build_feeds, with_feed_products
from tickwire.feeds.record import Recorder
from tickwire.gateway.app import create_admin_app, create_app
from tickwire.gateway.ingest_app import ingest_app
from tickwire.gateway.lowlevel import JsonErrorAppRunner
from tickwire.ingest.pipeline import Ingest
from tickwire.ingest.service import IngestService
from tickwire.ingest.writer import StoreWriter
from tickwire.market import Market, TimeZone

log = logging.getLogger("tickwire.server")


def load_products(config: Config, now: datetime | None = None) -> Catalogue:
    """The shipped catalogue (or `server.catalogue`) with the config's `[[products]]`, monthly
    contracts named after the month of `now` (today) in the service time zone."""
    path = Path(config.server.catalogue) if config.server.catalogue else None
    catalogue = load_catalogue(path)
    if config.products:
        catalogue = catalogue.with_products(config.products)
    today = now or datetime.now(ZoneInfo(config.server.timezone))
    return catalogue.dated(today.strftime("%y%m"))


def feed_catalogue(config: Config) -> Catalogue:
    """The catalogue the server serves: `load_products` with what the feeds bring (see
    `with_feed_products`; a relay asks its upstream)."""
    return with_feed_products(config.feeds, load_products(config), config.data_path,
                              frozenset(p.code for p in config.products))


def build_engine(config: Config, catalogue: Catalogue, market: Market | None,
                 store: SqliteStore | None) -> Engine:
    """The one place that picks the engine (`[engine] kind`); a gateway's has no market and
    no store."""
    if config.engine.kind == "memory":
        assert market is not None and store is not None  # the config allows no other
        return MemoryEngine(catalogue, market, store)
    if config.engine.kind == "local":
        path = config.engine_socket
        if len(str(path).encode()) > MAX_UNIX_PATH:
            raise ConfigError(f"engine.socket: {str(path)[:64]}... is longer than a Unix "
                              f"socket's {MAX_UNIX_PATH} bytes; set a shorter engine.socket")
        if config.engine.role == "gateway":
            return LocalGateway(path, catalogue, config.engine.on_error)
        assert market is not None and store is not None
        return LocalIngest(path, catalogue, market, store, config.engine.role)
    try:
        from tickwire.engine.redis import RedisEngine
    except ImportError:
        raise ConfigError("engine.kind: \"redis\" needs the redis extra: "
                          "pip install 'tickwire[redis]'") from None
    return RedisEngine(config.engine, catalogue, market, store)


def recorded_codes(config: Config, catalogue: Catalogue) -> list[str]:
    """`[record] codes`, each checked against the catalogue (a `ConfigError` names an
    unknown one)."""
    for code in config.record.codes:
        if code not in catalogue.products:
            raise ConfigError(f"record.codes: unknown code {code!r}")
    return list(config.record.codes)


def build_recorder(config: Config, catalogue: Catalogue) -> Recorder | None:
    """The recorder of `[record]` with its folder made, checked and taken (None when it is
    off)."""
    codes = recorded_codes(config, catalogue)
    if not config.record.path:
        return None
    recorder = Recorder(Path(config.record.path), codes)
    recorder.prepare()
    return recorder


def loopback_only_warning(config: Config) -> str | None:
    """What to tell a user who listens beyond this machine while only it may connect."""
    host = config.server.host
    if host in ("localhost", "") or _is_loopback(host):
        return None
    allowed = [ipaddress.ip_network(a, strict=False) for a in config.access.allow]
    if any(not net.is_loopback for net in allowed):
        return None
    return (f"listening on {host}, but the allow-list admits this machine only: every other "
            "client gets 403. Allow a network with [access] allow in the config, or at run "
            "time: tickwire allow add 192.168.0.0/16 --data-dir "
            f"{config.server.data_dir}")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may well reach beyond this machine


@dataclass(eq=False)
class Server:
    """Everything but the sockets; `app` serves the gateway and runs the ingest with it
    (an ingest's app serves only `/healthz` and `/metrics`; a gateway's runs no ingest)."""

    config: Config
    engine: Engine
    ingest: IngestService | None
    feeds: list[Feed]
    app: web.Application
    admin_app: web.Application | None = None
    """The admin API on a listener of its own (`access.admin_listen`), else None."""


def build(config: Config, feeds: list[Feed] | None = None) -> Server:
    """The process of `[engine] role`: see `build_all`, `build_gateway`."""
    if config.engine.role == "gateway":
        return build_gateway(config)
    return build_all(config, feeds)


def build_gateway(config: Config) -> Server:
    """A gateway: clients served from the engine; no feeds, no store, no data dir."""
    engine = build_engine(config, load_products(config), None, None)
    app = create_app(config, engine)
    _start_engine_first(app, engine)

    async def close_engine(app: web.Application) -> None:
        await engine.close()

    app.on_cleanup.append(close_engine)
    return Server(config, engine, None, [], app, _admin_app(config, app))


def _admin_app(config: Config, app: web.Application) -> web.Application | None:
    """The admin API's own app when `access.admin_listen` asks for one (an ingest alone
    serves no admin API: the allow-list is changed through a gateway or `tickwire allow`)."""
    if not config.access.admin_listen or config.engine.role == "ingest":
        return None
    return create_admin_app(app)


def _start_engine_first(app: web.Application, engine: Engine) -> None:
    """Start the engine before anything else of `app` starts."""

    async def start_engine(app: web.Application) -> None:
        await engine.start()

    app.on_startup.insert(0, start_engine)


def build_all(config: Config, feeds: list[Feed] | None = None) -> Server:
    """Catalogue, feeds, market (restored from the store), engine, ingest and gateway (an
    ingest alone for role "ingest"). `feeds` replaces the configured ones (benchmarks and
    tests bring their own)."""
    catalogue = feed_catalogue(config)
    tz = TimeZone(config.server.timezone)
    market = Market(catalogue.products.values(), tz)
    if feeds is None:
        feeds = build_feeds(config.feeds, catalogue, tz,
                            lambda code: market.products[code].hours, config.data_path)
    recorder = build_recorder(config, catalogue)
    lock = DataDirLock(config.data_path)
    try:
        lock.acquire(f"serving {config.server.host}:{config.server.port}")
        store = SqliteStore(config.database_path)
        engine = build_engine(config, catalogue, market, store)
        ingest = Ingest(market, engine, store, StoreWriter(store), recorder)
        ingest.restore()
    except BaseException:
        lock.release()
        if recorder is not None:
            recorder.close()  # frees its folder
        raise
    service = IngestService(ingest, feeds)
    if config.engine.role == "ingest":
        app = ingest_app(config, engine)
    else:
        app = create_app(config, engine)

    async def start_ingest(app: web.Application) -> None:
        await service.start()

    async def stop_ingest(app: web.Application) -> None:
        await service.stop()
        await engine.close()
        store.close()
        lock.release()
        log.info("stopped; store flushed")

    _start_engine_first(app, engine)
    app.on_startup.append(start_ingest)
    app.on_cleanup.append(stop_ingest)
    return Server(config, engine, service, feeds, app, _admin_app(config, app))


async def serve(config: Config) -> None:
    """Run the server until SIGTERM or SIGINT, then shut down cleanly."""
    server = build(config)
    runner = _runner(server.app, config)
    await runner.setup()
    host = config.server.host
    listeners = [(runner, host, port) for port in [config.server.port,
                                                   *config.server.extra_ports]]
    runners = [runner]
    if server.admin_app is not None:
        admin_runner = _runner(server.admin_app, config)
        await admin_runner.setup()
        runners.insert(0, admin_runner)  # cleaned up first: its app shares the main one's
        listeners.append((admin_runner, *listen_address(config.access.admin_listen)))
    try:
        for site_runner, site_host, port in listeners:
            reuse = config.server.reuse_port and site_runner is runner
            await web.TCPSite(site_runner, site_host, port, reuse_address=True,
                              reuse_port=reuse or None).start()
    except OSError as exc:
        for each in runners:
            await each.cleanup()
        hint = ""
        if exc.errno == errno.EACCES and port < 1024:
            hint = f" (ports below 1024 need root: try --port {port + 7000})"
        raise OSError(f"cannot listen on {site_host}:{port}: {exc.strerror}{hint}") from None
    admin = {"admin": f"http://{config.access.admin_listen}/admin/allow"
             } if server.admin_app is not None else {}
    log.info("listening", extra={"url": f"http://{host}:{config.server.port}",
                                 "ws": f"ws://{host}:{config.server.port}/ws",
                                 "engine": config.engine.kind, "role": config.engine.role,
                                 **admin})
    warning = loopback_only_warning(config)
    if warning:
        log.warning(warning)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    for each in runners:
        with contextlib.suppress(Exception):
            await each.cleanup()


def _runner(app: web.Application, config: Config) -> web.AppRunner:
    return JsonErrorAppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0,
                              keepalive_timeout=config.server.http_idle_timeout)
