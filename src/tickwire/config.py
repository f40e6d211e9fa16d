"""Settings: one TOML file, with `TICKWIRE_*` environment variables and CLI flags over it.

Every key is validated at start-up; a bad one raises `ConfigError` naming it.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import tomli_w

from tickwire.client.urls import http_url, ws_url
from tickwire.models import MAX_RECENT_TRADES, RECENT_TRADES, Product


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the key and what is wrong."""


class ServerConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Where the server listens, where it keeps its data, how it answers and logs."""

    host: str = "127.0.0.1"
    """The address to listen on (`0.0.0.0` for every IPv4 interface)."""
    port: int = 1008
    """The port of the HTTP paths and the WebSocket (the vendor's; below 1024 needs root)."""
    extra_ports: list[int] = []
    """More ports serving the same paths (the vendor's clients also use `ws://HOST/ws`)."""
    reuse_port: bool = False
    """Let several gateway processes listen on the same port (`SO_REUSEPORT`, Linux): the
    kernel spreads new connections over them (what `tickwire cluster` does)."""
    data_dir: str = "./tickwire-data"
    """The folder of the store (K-line history, the allow-list), made on first start."""
    timezone: str = "Asia/Shanghai"
    """The service time zone: quote times, day bars and trading hours are in it."""
    gzip: bool = False
    """Compress HTTP answers for clients that accept gzip."""
    kline_order: Literal["newest_first", "oldest_first"] = "newest_first"
    """The order of the bars `redis.php` answers with."""
    catalogue: str = ""
    """Another catalogue file to use instead of the shipped one."""
    http_idle_timeout: float = 15
    """Seconds a connection has to send a complete request; idle keep-alive connections are
    closed after it too (a client trickling bytes cannot hold a connection open)."""
    log_format: Literal["auto", "json", "text"] = "auto"
    """auto: text on a terminal, JSON lines otherwise."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """The least severe log lines written."""


class AccessConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Who may connect, and the admin API."""

    allow: list[str] = msgspec.field(default_factory=lambda: ["127.0.0.0/8", "::1"])
    """Addresses and CIDR ranges admitted; anyone else gets a 403 (more can be added at run
    time with the admin API or `tickwire allow`)."""
    admin_token: str = ""
    """The bearer token of the admin API; the admin API is off while it is empty."""
    admin_listen: str = ""
    """`HOST:PORT` of a listener of its own for the admin API (e.g. `127.0.0.1:1009`): then
    only there, and absent (404) on `server.port` and `extra_ports`; empty: on those."""
    trusted_proxies: list[str] = []
    """Proxies whose `X-Forwarded-For` is believed (addresses or CIDR ranges)."""
    ws_connections_per_ip: int = 6
    """WebSockets one client address may hold; the next handshake gets a 429."""


class LimitsConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Requests per second per client IP."""

    quote_per_code: int = 3
    """`getQuote.php` requests per second for each code."""
    kline_per_code: int = 5
    """`redis.php` requests per second for each code."""
    category: int = 2
    """`getCategory.php` requests per second."""
    symbols: int = 2
    """`getSymbolList.php` requests per second."""


class WebSocketConfig(msgspec.Struct, forbid_unknown_fields=True):
    """What one WebSocket connection may do, and when it is closed."""

    max_codes: int = 500
    """Codes one connection may hold."""
    max_message_bytes: int = 65536
    """A bigger frame closes the connection with 1009."""
    messages_per_second: float = 50
    """Messages a client may send per second (burst of the same size); more are dropped."""
    flood_timeout: float = 10
    """Seconds a client may stay over `messages_per_second` before it is closed with 1008."""
    ping_interval: float = 10
    """Seconds of silence from a client before the server sends a protocol ping."""
    idle_timeout: float = 30
    """Seconds of silence after which the server closes the connection."""
    max_pending_bytes: int = 262_144
    """Bytes waiting to be sent to one connection before it counts as a slow reader."""
    slow_timeout: float = 30
    """Seconds a connection may stay a slow reader before it is closed with 1008."""


class SimFeedConfig(msgspec.Struct, tag="sim", tag_field="kind", forbid_unknown_fields=True):
    """Simulated markets: a random walk for each product it drives, the same for a seed."""

    seed: int = 1
    """The random seed: the same seed and the same event times give the same updates."""
    rate: float = 5.0
    """Updates per product per second."""
    history: bool = True
    """Fill plausible history where the store has none (every product on a first start, a
    product added since), at every start."""
    codes: list[str] = []
    """Products this feed drives (empty: all the catalogue's, less those of other feeds)."""


class ReplayFeedConfig(msgspec.Struct, tag="replay", tag_field="kind",
                       forbid_unknown_fields=True):
    """Recorded trades or quotes played through the server, their own time driving the
    K-lines."""

    path: str
    """A file, a folder or a glob, read in name order. Trades CSV (`*.csv`): the header
    `time_ms,price,size,side` (`side` `buy` or `sell`: the aggressor) with an optional
    `code` column. Quote bodies (`*.jsonl`, `*.jsonl.gz`): the files of `[record]`, or the
    output of `tickwire record`."""
    speed: float = 1.0
    """1.0 plays in real time, 10 ten times faster, 0 as fast as it goes."""
    loop: bool = False
    """Play again from the start at the end, the times moved on by the data's span."""
    category: str = "4"
    """The category of products the catalogue lacks (precision read off the data)."""
    code: str = ""
    """The product of a trades CSV without a `code` column."""


MAX_UPSTREAM_CONNECTIONS = 6
"""The most WebSockets one address may hold at the vendor (PROTOCOL 2): a relay never opens
more."""


class RelayFeedConfig(msgspec.Struct, tag="relay", tag_field="kind",
                      forbid_unknown_fields=True):
    """Another server of this protocol (the vendor, or another tickwire) relayed: its quotes
    pushed to any number of local clients, its K-lines kept beyond its windows."""

    http_url: str
    """The upstream's HTTP address, e.g. `http://vendor.example:1008`."""
    ws_url: str = ""
    """The upstream's WebSocket address (empty: `/ws` on the HTTP address)."""
    codes: list[str] | Literal["all"] = "all"
    """The products relayed: a list of codes, or "all" of the upstream's symbol lists."""
    connections: int = 1
    """Upstream WebSockets the codes are spread over (1 to 6)."""


MAX_DEPTH = 10
"""The most book levels a side a quote carries (PROTOCOL 5)."""
REFERENCE_EXCHANGE = "binance"
"""The exchange the tests prove exact; the only one `rest_url`/`ws_url` can point elsewhere."""
_EXCHANGE_ID = re.compile(r"^[a-z0-9]+$")
_SYMBOL = re.compile(r"^[A-Za-z0-9]+/[A-Za-z0-9]+(:[A-Za-z0-9-]+)?$")


class ExchangeFeedConfig(msgspec.Struct, tag="exchange", tag_field="kind",
                         forbid_unknown_fields=True):
    """A crypto exchange's public streams through ccxt (the `exchanges` extra): its trades
    and order books live, its own candles for the K-line windows at start. Each symbol is
    served as lowercase base and quote (`BTC/USDT`: `btcusdt`) in category "4", at the
    market's own price and size precision."""

    exchange: str
    """A ccxt exchange id: "binance" (the reference), "okx", "bybit", "kraken", ..."""
    symbols: list[str]
    """ccxt symbols, e.g. ["BTC/USDT", "ETH/USDT"]; one the exchange does not list stops the
    start."""
    depth: int = MAX_DEPTH
    """Book levels a side in the quote (1 to 10)."""
    trades: int = RECENT_TRADES
    """Recent trades in the quote's `BS`, newest first: 0 (none) to `MAX_RECENT_TRADES`
    (50)."""
    rest_url: str = ""
    """Another address for the reference exchange's public REST API (its `/api/v3`), e.g. a
    local fake in tests; empty: the exchange's own."""
    ws_url: str = ""
    """Another address for the reference exchange's spot WebSocket (its `/ws`); empty: the
    exchange's own."""


FeedConfig = SimFeedConfig | ReplayFeedConfig | RelayFeedConfig | ExchangeFeedConfig
"""Every kind of feed, told apart by `kind`: a new kind is a config class here and a module
in `tickwire.feeds`."""


class EngineConfig(msgspec.Struct, forbid_unknown_fields=True):
    """How the ingest and the gateways meet: in one process, through a Unix socket to
    gateway processes on the same machine, or through a Redis (or Valkey) server that any
    number of gateway processes on any number of machines share."""

    kind: Literal["memory", "local", "redis"] = "memory"
    """What the ingest and the gateway share: "memory" (one process, SQLite for history),
    "local" (the ingest's process, and gateway processes on this machine joining it through
    `socket`: the feeds off the gateways' cores, no Redis) or "redis" (the server at `url`:
    one ingest, any number of gateways)."""
    socket: str = ""
    """The Unix socket of kind "local", which the ingest listens on and its gateways connect
    to (`engine.sock` in the data dir when empty; at most 107 bytes)."""
    url: str = "redis://127.0.0.1:6379/0"
    """The Redis server of kind "redis": `redis://[[user]:password@]host[:port][/db]`,
    `rediss://` for TLS, or `unix:///path/to/redis.sock`. A standalone server (not Redis
    Cluster)."""
    role: Literal["all", "ingest", "gateway"] = "all"
    """What this process runs: "all" the feeds and the clients; with kind "redis" or
    "local" also "ingest" (the feeds, the K-lines and the SQLite history, publishing to the
    gateways; no clients: only `/healthz` and `/metrics` on its port) or "gateway" (the
    clients, served from the engine; no feeds, and with "redis" no data dir)."""
    on_error: Literal["open", "closed"] = "open"
    """While Redis (kind "local": the ingest) cannot be reached: "open" lets WebSockets
    and requests in, each gateway counting its own against the cap and the limits;
    "closed" refuses them with a 503. The allow-list never opens: each gateway keeps the
    last one it read."""
    lease: float = 5.0
    """Seconds a gateway's WebSocket counts and watched codes outlive it in Redis when it
    dies without closing them, and the ingest's hold on `prefix` (1 to 600)."""
    prefix: str = "tickwire"
    """The start of every Redis key and channel, so that several deployments can share one
    Redis server (letters, digits, `_ . : -`)."""
    kept_bars: int = 0
    """K-line bars kept in Redis per product and interval (0 up to 100000): as far back as
    these go, gateways answer `redis.php` from Redis alone; beyond, and beyond the
    window (600, 300 or 100 bars) when this is less, they ask the ingest's history."""


class RecordConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Recording: every live update of the recorded products, its quote body exactly as the
    server pushes it, one JSON line `{"t":<receive time, Unix ms>,"body":{...}}` each, in
    one gzip file per day of the receive time in UTC+8 (`2026-12-01.jsonl.gz`, a new file
    at UTC+8 midnight whatever `server.timezone` says). Written at least once a second, so
    a `kill -9` loses at most the last second."""

    path: str = ""
    """The folder of the recordings, made at start if missing (a folder the server cannot
    write in stops it at start); empty: recording off."""
    codes: list[str] = []
    """The products recorded (empty: every product)."""


class Config(msgspec.Struct, forbid_unknown_fields=True):
    """The whole configuration: one table per section, `[[feeds]]` and `[[products]]`."""

    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    access: AccessConfig = msgspec.field(default_factory=AccessConfig)
    limits: LimitsConfig = msgspec.field(default_factory=LimitsConfig)
    websocket: WebSocketConfig = msgspec.field(default_factory=WebSocketConfig)
    engine: EngineConfig = msgspec.field(default_factory=EngineConfig)
    record: RecordConfig = msgspec.field(default_factory=RecordConfig)
    feeds: list[FeedConfig] = msgspec.field(default_factory=lambda: [SimFeedConfig()])
    """The feeds, one `[[feeds]]` table each, told apart by `kind` (`sim` when a table names
    none); each product is driven by one feed."""
    products: list[Product] = []
    """Products added to the catalogue, one `[[products]]` table each, with the keys of the
    catalogue's products (a code the catalogue has replaces its product)."""

    @property
    def data_path(self) -> Path:
        return Path(self.server.data_dir)

    @property
    def engine_socket(self) -> Path:
        """The local engine's Unix socket (`engine.socket`, else in the data dir)."""
        return Path(self.engine.socket) if self.engine.socket else \
            self.data_path / "engine.sock"

    @property
    def database_path(self) -> Path:
        """The store's database file in the data dir."""
        return self.data_path / "tickwire.sqlite3"


CONFIG_ENV = "TICKWIRE_CONFIG"
"""The environment variable naming the config file when no file is given."""
ENV_SECTIONS = ("server", "access", "limits", "websocket", "engine", "record")
"""The sections whose keys `TICKWIRE_<SECTION>_<KEY>` environment variables set."""
_ENV_PREFIX = "TICKWIRE_"
_PATH = re.compile(r"`\$\.?(.*)`")


def _env_value(name: str, text: str) -> Any:
    """An environment value read as a TOML value when it is one, else as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
    except RecursionError:
        raise ConfigError(f"{name}: nested too deeply") from None


def env_var(section: str, key: str) -> str | None:
    """The environment variable that sets `section.key` (None where none does)."""
    return f"{_ENV_PREFIX}{section}_{key}".upper() if section in ENV_SECTIONS else None


def _apply_env(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    for name, text in environ.items():
        if not name.startswith(_ENV_PREFIX) or name == CONFIG_ENV:
            continue
        rest = name[len(_ENV_PREFIX):].lower()
        section = next((s for s in ENV_SECTIONS if rest.startswith(s + "_")), None)
        if section is None:
            continue
        key = rest[len(section) + 1:]
        raw.setdefault(section, {})[key] = _env_value(name, text)


DEFAULT_FEED_KIND = "sim"
"""The `kind` of a `[[feeds]]` table that names none."""


def _default_feed_kind(raw: dict[str, Any]) -> None:
    feeds = raw.get("feeds")
    if isinstance(feeds, list):
        for table in feeds:
            if isinstance(table, dict):
                table.setdefault("kind", DEFAULT_FEED_KIND)


def _key_of(exc: msgspec.ValidationError) -> tuple[str, str]:
    text = str(exc)
    match = _PATH.search(text)
    message = _PATH.sub("", text).strip().removesuffix("- at").strip().rstrip(" -")
    key = match[1] if match else ""
    if "unknown field" in message:
        field = re.search(r"unknown field `(.*)`", message, re.S)
        if field:
            name = field[1] if re.fullmatch(r"[\w-]+", field[1]) else json.dumps(field[1])
            key = f"{key}.{name}" if key else name  # a TOML key, quoted where it must be
            message = "unknown key"
    elif message.startswith(("Invalid enum value", "Invalid value")):
        choices = _choices(key)
        if choices:
            message += f" (one of: {', '.join(choices)})"
    return key or "config", message


def _choices(key: str) -> list[str]:
    """The values a setting may take when it is one of a few (`engine.kind`)."""
    if re.fullmatch(r"feeds\[\d+\]\.kind", key):
        kinds = typing.get_args(FeedConfig) or (FeedConfig,)
        return [str(k.__struct_config__.tag) for k in kinds]
    section, _, name = key.partition(".")
    struct = typing.get_type_hints(Config).get(section)
    if struct is None or not name:
        return []
    hint = typing.get_type_hints(struct).get(name)
    return [str(v) for v in typing.get_args(hint)] if typing.get_origin(hint) is Literal else []


def _check_finite(config: Config) -> None:
    """No setting is NaN or infinite: either passes every `<= 0` check and then means
    nothing (a timeout that never comes, a rate of NaN)."""
    parts: list[tuple[str, msgspec.Struct]] = [
        (name, getattr(config, name)) for name in ENV_SECTIONS]
    parts += [(f"feeds[{i}]", feed) for i, feed in enumerate(config.feeds)]
    parts += [(f"products[{i}]", product) for i, product in enumerate(config.products)]
    for prefix, part in parts:
        for field in msgspec.structs.fields(part):
            value = getattr(part, field.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{prefix}.{field.name}: must be a finite number, "
                                  f"not {value}")


def _validate(config: Config) -> None:
    _check_finite(config)
    server, access = config.server, config.access
    for key, port in [("server.port", server.port)] + [
        (f"server.extra_ports[{i}]", p) for i, p in enumerate(server.extra_ports)
    ]:
        if not 0 <= port <= 65535:
            raise ConfigError(f"{key}: {port} is not a port number (0..65535)")
    try:
        ZoneInfo(server.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"server.timezone: unknown time zone {server.timezone!r}") from None
    for field in ("allow", "trusted_proxies"):
        for i, entry in enumerate(getattr(access, field)):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ConfigError(
                    f"access.{field}[{i}]: {entry!r} is not an IP address or CIDR range"
                ) from None
    if access.admin_listen:
        _validate_admin_listen(access)
    if server.http_idle_timeout <= 0:
        raise ConfigError("server.http_idle_timeout: must be greater than 0")
    if access.ws_connections_per_ip < 1:
        raise ConfigError("access.ws_connections_per_ip: must be at least 1")
    for name in ("quote_per_code", "kline_per_code", "category", "symbols"):
        if getattr(config.limits, name) <= 0:
            raise ConfigError(f"limits.{name}: must be greater than 0")
    ws = config.websocket
    for name in ("max_codes", "max_message_bytes", "messages_per_second", "flood_timeout",
                 "ping_interval", "idle_timeout", "max_pending_bytes", "slow_timeout"):
        if getattr(ws, name) <= 0:
            raise ConfigError(f"websocket.{name}: must be greater than 0")
    if ws.ping_interval >= ws.idle_timeout:
        raise ConfigError("websocket.ping_interval: must be less than websocket.idle_timeout")
    _validate_engine(config.engine)
    if not config.feeds:
        raise ConfigError("feeds: at least one feed is needed")
    for i, feed in enumerate(config.feeds):
        if isinstance(feed, SimFeedConfig) and not 0 < feed.rate <= 100_000:
            raise ConfigError(f"feeds[{i}].rate: must be in (0, 100000] updates per second")
        if isinstance(feed, ReplayFeedConfig):
            if not 0 <= feed.speed <= 1_000_000:
                raise ConfigError(f"feeds[{i}].speed: must be in [0, 1000000] (0: at once)")
            if not feed.path:
                raise ConfigError(f"feeds[{i}].path: a file, a folder or a glob is needed")
        if isinstance(feed, RelayFeedConfig):
            _validate_relay(i, feed)
        if isinstance(feed, ExchangeFeedConfig):
            _validate_exchange(i, feed)


_REDIS_SCHEMES = ("redis", "rediss", "unix")
MAX_KEPT_BARS = 100_000
MAX_UNIX_PATH = 107
"""Bytes in a Unix socket's path at the most (Linux's `sun_path` less its NUL)."""
_PREFIX = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")


def shown_url(url: str) -> str:
    """The URL without its password, for logs and `/healthz`."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    credentials, _, host = rest.partition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user + ':' if user else ''}****@{host}"


def _validate_engine(engine: EngineConfig) -> None:
    if engine.role != "all" and engine.kind == "memory":
        raise ConfigError(f"engine.role: {engine.role!r} needs engine.kind = \"local\" or "
                          "\"redis\" (the memory engine runs both in one process)")
    if len(engine.socket.encode()) > MAX_UNIX_PATH:
        raise ConfigError(f"engine.socket: {len(engine.socket.encode())} bytes, a Unix "
                          f"socket's path has at most {MAX_UNIX_PATH}")
    if engine.kind != "redis":
        return
    scheme, sep, rest = engine.url.partition("://")
    if not sep or scheme not in _REDIS_SCHEMES or not rest.strip("/"):
        raise ConfigError(f"engine.url: {engine.url!r} is not a redis://, rediss:// or "
                          "unix:// URL")
    if not 1 <= engine.lease <= 600:
        raise ConfigError("engine.lease: must be 1 to 600 seconds")
    if not 0 <= engine.kept_bars <= MAX_KEPT_BARS:
        raise ConfigError(f"engine.kept_bars: must be 0 to {MAX_KEPT_BARS}")
    if not _PREFIX.match(engine.prefix):
        raise ConfigError(f"engine.prefix: {engine.prefix!r} must be 1 to 64 letters, "
                          "digits or _ . : -")


def listen_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` (`[::1]:1009` for an IPv6 address) as (host, port); ValueError if not."""
    host, _, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        host = ""  # an IPv6 address needs its brackets
    if not host or any(c in host for c in "[]/ ") or not (port.isascii() and port.isdigit()) \
            or not 1 <= int(port) <= 65535:
        raise ValueError(f"{text[:64]!r} is not HOST:PORT (e.g. \"127.0.0.1:1009\")")
    return host, int(port)


def _validate_admin_listen(access: AccessConfig) -> None:
    try:
        listen_address(access.admin_listen)
    except ValueError as exc:
        raise ConfigError(f"access.admin_listen: {exc}") from None
    if not access.admin_token:
        raise ConfigError("access.admin_listen: the admin API is off without "
                          "access.admin_token; set both or neither")


def _validate_exchange(i: int, feed: ExchangeFeedConfig) -> None:
    if not _EXCHANGE_ID.match(feed.exchange):
        raise ConfigError(f"feeds[{i}].exchange: {feed.exchange!r} is not a ccxt exchange id "
                          "(lowercase, e.g. \"binance\")")
    if not feed.symbols:
        raise ConfigError(f"feeds[{i}].symbols: at least one symbol, e.g. [\"BTC/USDT\"]")
    for j, symbol in enumerate(feed.symbols):
        if not _SYMBOL.match(symbol):
            raise ConfigError(f"feeds[{i}].symbols[{j}]: {symbol!r} is not a symbol like "
                              "\"BTC/USDT\"")
    if not 1 <= feed.depth <= MAX_DEPTH:
        raise ConfigError(f"feeds[{i}].depth: must be 1 to {MAX_DEPTH}")
    if not 0 <= feed.trades <= MAX_RECENT_TRADES:
        raise ConfigError(f"feeds[{i}].trades: must be 0 (none) to {MAX_RECENT_TRADES}")
    for key, check, value in (("rest_url", http_url, feed.rest_url),
                              ("ws_url", ws_url, feed.ws_url)):
        if not value:
            continue
        if feed.exchange != REFERENCE_EXCHANGE:
            raise ConfigError(f"feeds[{i}].{key}: only for exchange "
                              f"\"{REFERENCE_EXCHANGE}\"")
        try:
            check(value)
        except ValueError as exc:
            raise ConfigError(f"feeds[{i}].{key}: {exc}") from None


def _validate_relay(i: int, feed: RelayFeedConfig) -> None:
    for key, check, value in (("http_url", http_url, feed.http_url),
                              ("ws_url", ws_url, feed.ws_url)):
        if key == "http_url" or value:
            try:
                check(value)
            except ValueError as exc:
                raise ConfigError(f"feeds[{i}].{key}: {exc}") from None
    if not 1 <= feed.connections <= MAX_UPSTREAM_CONNECTIONS:
        raise ConfigError(f"feeds[{i}].connections: must be 1 to {MAX_UPSTREAM_CONNECTIONS}")
    if isinstance(feed.codes, list) and not feed.codes:
        raise ConfigError(f"feeds[{i}].codes: a list of codes, or \"all\"")


def load_config(
    path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Read `path` (or nothing), then environment variables, then `overrides` like
    `{"server.port": 8080}`; validate everything."""
    environ = os.environ if environ is None else environ
    if path is None and environ.get(CONFIG_ENV):
        path = Path(environ[CONFIG_ENV])
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: {exc.strerror or exc}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        except RecursionError:
            raise ConfigError(f"{path}: not valid TOML: nested too deeply") from None
    _apply_env(raw, environ)
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        section, key = dotted.split(".", 1)
        raw.setdefault(section, {})[key] = value
    _default_feed_kind(raw)
    try:
        config = msgspec.convert(raw, Config)
    except msgspec.ValidationError as exc:
        key, message = _key_of(exc)
        raise ConfigError(f"{key}: {message}") from None
    _validate(config)
    return config


def toml_document(data: dict[str, Any]) -> str:
    """Plain configuration data (`msgspec.to_builtins` of a `Config`, or part of one) as a
    TOML file is written: the sections, then a `[[feeds]]` or `[[products]]` table each."""
    sections = {name: value for name, value in data.items() if isinstance(value, dict)}
    text = tomli_w.dumps(sections)
    for name, value in data.items():
        if isinstance(value, list):
            text += "".join(f"\n[[{name}]]\n{tomli_w.dumps(table)}" for table in value)
    return text

