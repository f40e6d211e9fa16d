"""Guards: aiohttp middleware over the engine's counters, for HTTP and WebSocket alike.

In order: the allow-list (403), the WebSocket cap per IP (429), the rate limits of the
protocol's paths (429 with Retry-After). Refusals of every kind are counted for /metrics and
logged at most once per client and kind a minute, so a misbehaving client cannot flood the
log.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from aiohttp import web

from tickwire.errors import NotAuthorized, RateLimited, TickwireError
from tickwire.gateway.access import CLIENT_IP, client_address, client_ip
from tickwire.gateway.state import GATEWAY, Gateway

log = logging.getLogger("tickwire.guards")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

WS_PATH = "/ws"


def is_websocket(request: web.Request) -> bool:
    """A request for the WebSocket: anything on `/ws`, an upgrade on the root (the vendor's
    test service takes the WebSocket there, PROTOCOL section 1)."""
    return request.path == WS_PATH or (
        request.path == "/" and request.headers.get("Upgrade", "").lower() == "websocket")


class Refusals:
    """Counts refusals by kind and logs each client's at most once a minute per kind."""

    def __init__(self, quiet_seconds: float = 60.0) -> None:
        self.counts: Counter[str] = Counter()
        self._quiet = quiet_seconds
        self._last_logged: dict[tuple[str, str], float] = {}

    def note(self, kind: str, ip: str, detail: str) -> None:
        self.counts[kind] += 1
        now = time.monotonic()
        key = (kind, ip)
        last = self._last_logged.get(key)
        if last is not None and now - last < self._quiet:
            return
        if len(self._last_logged) > 10_000:
            self._last_logged = {k: t for k, t in self._last_logged.items()
                                 if now - t < self._quiet}
        self._last_logged[key] = now
        log.warning("refused", extra={"kind": kind, "ip": ip, "detail": detail[:200]})



@web.middleware
async def allow_list(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every HTTP request and WebSocket handshake: who is it, and is it on the allow-list."""
    gateway = request.app[GATEWAY]
    ip = request[CLIENT_IP] = client_address(request, gateway.trusted_proxies)
    if not gateway.allow_list.allows(ip):
        gateway.refusals.note("not_authorized", ip, request.path)
        raise NotAuthorized(f"IP {ip} is not authorized")
    return await handler(request)


HANDED_OVER = web.RequestKey("ws_handed_over", bool)
"""Set on a request whose socket a WebSocket connection took over: the connection gives
back its place under the cap when it closes, not this guard when the handler returns."""


@web.middleware
async def ws_cap(request: web.Request, handler: Handler) -> web.StreamResponse:
    """At most `ws_connections_per_ip` WebSockets per client IP, counted in the engine for
    as long as the connection lives."""
    if not is_websocket(request) or request.match_info.http_exception is not None:
        return await handler(request)
    gateway = request.app[GATEWAY]
    ip = client_ip(request)
    cap = gateway.config.access.ws_connections_per_ip
    if not await gateway.engine.ws_acquire(ip, cap):
        msg = f"too many WebSocket connections from {ip}: at most {cap} at once"
        gateway.refusals.note("ws_cap", ip, msg)
        raise TickwireError(msg, 429)
    try:
        return await handler(request)
    finally:
        if not request.get(HANDED_OVER):
            await gateway.engine.ws_release(ip)


class RateRule(NamedTuple):
    """How one path is rate limited: the setting of `[limits]` that bounds it, and the
    counted keys of a request with a name for each (raising a 4xx for a bad request)."""

    limit: str
    keys: Callable[[web.Request, Gateway], list[tuple[str, str]]]


RATE_RULES = web.AppKey("rate_rules", dict[str, RateRule])


@web.middleware
async def rate_limits(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The protocol's limits per client IP and second (PROTOCOL section 4)."""
    rule = request.app[RATE_RULES].get(request.path)
    if rule is None or request.match_info.http_exception is not None:  # e.g. a 405
        return await handler(request)
    gateway = request.app[GATEWAY]
    gateway.requests[request.path] += 1
    named = rule.keys(request, gateway)
    if named:
        limit: int = getattr(gateway.config.limits, rule.limit)
        ip = client_ip(request)
        verdict = await gateway.engine.rate_check([f"{ip}|{key}" for key, _ in named], limit)
        if verdict.over:
            over = ", ".join(named[i][1] for i in verdict.over)
            raise RateLimited(f"rate limited: {over} (at most {limit} per second)",
                              retry_after=verdict.retry_after)
    return await handler(request)
