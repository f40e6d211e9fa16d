"""The connection to one Redis server, its key names, and how its state is told.

Every command has a timeout (`COMMAND_TIMEOUT`), so a Redis that stops answering fails a
request in bounded time instead of holding it. A command on a connection that broke (a
Redis restart) is sent once more on a new connection before it fails; a failure marks the
link down until a command succeeds again, which the engine's background loops try every
`RETRY_MOST` seconds at the most.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from tickwire.config import shown_url

log = logging.getLogger("tickwire.engine")

COMMAND_TIMEOUT = 2.0
"""Seconds to connect or to get an answer, before the command fails."""
MAX_CONNECTIONS = 64
"""Connections a process holds to Redis at once; a command waits for one at most
`COMMAND_TIMEOUT`."""
RETRY_FIRST, RETRY_MOST = 0.05, 1.0
"""Seconds between attempts to reach Redis again, doubling from the first to the most."""

FAILURES: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
"""What a command against an unreachable or failing Redis raises."""


@dataclass(frozen=True)
class Keys:
    """Every key and channel of one deployment, under its prefix."""

    prefix: str

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    # written by the ingest
    @property
    def updates(self) -> str:
        """Channel: batches of encoded quotes, in the order they happened (`redis_bus`)."""
        return self.key("updates")

    @property
    def latest(self) -> str:
        """Hash: code -> the newest encoded quote."""
        return self.key("latest")

    def bars(self, code: str, interval: str) -> str:
        """Sorted set: the K-line window of one product and interval, by open time."""
        return self.key("bars", interval, code)

    @property
    def catalogue(self) -> str:
        return self.key("catalogue")

    @property
    def catalogue_id(self) -> str:
        return self.key("catalogue", "id")

    @property
    def status(self) -> str:
        """The ingest's newest status report (expires when it stops reporting)."""
        return self.key("status")

    @property
    def ingest(self) -> str:
        """Which ingest publishes under this prefix (held for a lease, renewed)."""
        return self.key("ingest")

    @property
    def allow(self) -> str:
        """The run-time allow-list as of its version (a copy of the ingest's store)."""
        return self.key("allow")

    @property
    def allow_version(self) -> str:
        return self.key("allow", "version")

    @property
    def allow_changed(self) -> str:
        """Channel: each new allow-list, as it is stored."""
        return self.key("allow", "changed")

    # read by the ingest
    @property
    def calls(self) -> str:
        """Channel: requests from gateways to the ingest (history, allow-list changes)."""
        return self.key("calls")

    @property
    def watching(self) -> str:
        """Channel: a gateway started or stopped watching a code."""
        return self.key("watching")

    # the gateways'
    @property
    def gateways(self) -> str:
        """Sorted set: live gateways, scored by when their lease ends (Redis time, ms)."""
        return self.key("gateways")

    def gateway(self, gid: str, what: str) -> str:
        """A gateway's own keys: `ws` (WebSockets per IP), `watch` (codes), `replies`."""
        return self.key("gw", gid, what)

    def rate(self, key: str) -> str:
        return self.key("rate", key)


class Link:
    """A client of one Redis server with a bounded pool, and whether it is reachable as
    the last command found it."""

    def __init__(self, url: str) -> None:
        self.url = shown_url(url)
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url, max_connections=MAX_CONNECTIONS, timeout=COMMAND_TIMEOUT,
            socket_timeout=COMMAND_TIMEOUT, socket_connect_timeout=COMMAND_TIMEOUT,
            retry=Retry(NoBackoff(), 1))
        self.client: redis.asyncio.Redis = redis.asyncio.Redis.from_pool(pool)
        self.up = False
        self.error: str | None = "not connected yet"
        self._since = time.monotonic()
        self.failures = 0
        """Times the link went down."""
        self.closing = False
        """Set when the engine closes: every loop over the link ends (a cancellation that
        a library swallows cannot keep one going)."""

    def ok(self) -> None:
        if not self.up:
            if self.failures:
                log.warning("redis reachable again", extra={
                    "redis": self.url, "after_s": round(time.monotonic() - self._since, 1)})
            self.up, self.error, self._since = True, None, time.monotonic()

    def failed(self, exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {exc}"[:300]
        if self.up or self.error != error:
            log.error("redis unreachable", extra={"redis": self.url, "error": error})
        if self.up:
            self.failures += 1
            self._since = time.monotonic()
        self.up, self.error = False, error

    def health(self) -> dict[str, object]:
        state: dict[str, object] = {"url": self.url, "connected": self.up,
                                    "for_s": round(time.monotonic() - self._since, 1),
                                    "disconnects": self.failures}
        if self.error:
            state["error"] = self.error
        return state

    async def close(self) -> None:
        self.closing = True
        await self.client.aclose()
