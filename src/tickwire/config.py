"""Settings: one TOML file, with `TICKWIRE_*` environment variables and CLI flags over it.

Every key is validated at start-up; a bad one raises `ConfigError` naming it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from tickwire.models import Product


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the key and what is wrong."""


class ServerConfig(msgspec.Struct, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: int = 1008
    extra_ports: list[int] = []
    """More ports serving the same paths (the vendor's clients also use `ws://HOST/ws`)."""
    data_dir: str = "./tickwire-data"
    timezone: str = "Asia/Shanghai"
    gzip: bool = False
    kline_order: Literal["newest_first", "oldest_first"] = "newest_first"
    catalogue: str = ""
    """Another catalogue file to use instead of the shipped one."""
    http_idle_timeout: float = 15
    """Seconds a connection has to send a complete request; idle keep-alive connections are
    closed after it too (a client trickling bytes cannot hold a connection open)."""
    log_format: Literal["auto", "json", "text"] = "auto"
    """auto: text on a terminal, JSON lines otherwise."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class AccessConfig(msgspec.Struct, forbid_unknown_fields=True):
    allow: list[str] = msgspec.field(default_factory=lambda: ["127.0.0.0/8", "::1"])
    admin_token: str = ""
    trusted_proxies: list[str] = []
    ws_connections_per_ip: int = 6


class LimitsConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Requests per second per client IP."""

    quote_per_code: int = 3
    kline_per_code: int = 5
    category: int = 2
    symbols: int = 2


class WebSocketConfig(msgspec.Struct, forbid_unknown_fields=True):
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


class FeedConfig(msgspec.Struct, forbid_unknown_fields=True):
    kind: Literal["sim"] = "sim"
    seed: int = 1
    rate: float = 5.0
    """Updates per product per second."""
    history: bool = True
    """Fill plausible history into an empty store on first start."""
    codes: list[str] = []
    """Products this feed drives (empty: all)."""


class Config(msgspec.Struct, forbid_unknown_fields=True):
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    access: AccessConfig = msgspec.field(default_factory=AccessConfig)
    limits: LimitsConfig = msgspec.field(default_factory=LimitsConfig)
    websocket: WebSocketConfig = msgspec.field(default_factory=WebSocketConfig)
    feeds: list[FeedConfig] = msgspec.field(default_factory=lambda: [FeedConfig()])
    products: list[Product] = []

    @property
    def data_path(self) -> Path:
        return Path(self.server.data_dir)

    @property
    def database_path(self) -> Path:
        """The SQLite store in the data dir."""
        return self.data_path / "tickwire.sqlite3"


_SECTIONS = ("server", "access", "limits", "websocket")
_PATH = re.compile(r"`\$\.?(.*)`")


def _env_value(text: str) -> Any:
    """An environment value read as a TOML value when it is one, else as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _apply_env(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    for name, text in environ.items():
        if not name.startswith("TICKWIRE_") or name == "TICKWIRE_CONFIG":
            continue
        rest = name[len("TICKWIRE_"):].lower()
        section = next((s for s in _SECTIONS if rest.startswith(s + "_")), None)
        if section is None:
            continue
        key = rest[len(section) + 1:]
        raw.setdefault(section, {})[key] = _env_value(text)


def _key_of(exc: msgspec.ValidationError) -> tuple[str, str]:
    text = str(exc)
    match = _PATH.search(text)
    message = _PATH.sub("", text).strip().removesuffix("- at").strip().rstrip(" -")
    key = match[1] if match else ""
    if "unknown field" in message:
        field = re.search(r"`(\w+)`", message)
        if field:
            key = f"{key}.{field[1]}" if key else field[1]
            message = "unknown key"
    return key or "config", message


def _validate(config: Config) -> None:
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
    if not config.feeds:
        raise ConfigError("feeds: at least one feed is needed")
    for i, feed in enumerate(config.feeds):
        if not 0 < feed.rate <= 100_000:
            raise ConfigError(f"feeds[{i}].rate: must be in (0, 100000] updates per second")


def load_config(
    path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Read `path` (or nothing), then environment variables, then `overrides` like
    `{"server.port": 8080}`; validate everything."""
    environ = os.environ if environ is None else environ
    if path is None and environ.get("TICKWIRE_CONFIG"):
        path = Path(environ["TICKWIRE_CONFIG"])
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: {exc.strerror or exc}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    _apply_env(raw, environ)
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        section, key = dotted.split(".", 1)
        raw.setdefault(section, {})[key] = value
    try:
        config = msgspec.convert(raw, Config)
    except msgspec.ValidationError as exc:
        key, message = _key_of(exc)
        raise ConfigError(f"{key}: {message}") from None
    _validate(config)
    return config
