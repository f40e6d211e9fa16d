"""Guards: who the client is, whether it may come in, and how often it may ask.

Refusals of every kind are counted for /metrics and logged at most once per client and kind
a minute, so a misbehaving client cannot flood the log.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web

from tickwire.errors import RateLimited

log = logging.getLogger("tickwire.guards")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_address(text: str) -> Address | None:
    """An IP address, with `::ffff:a.b.c.d` read as `a.b.c.d`; None if it is not one."""
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_network(text: str) -> Network:
    """A CIDR range or a single address (as /32 or /128); ValueError if neither."""
    network = ipaddress.ip_network(text.strip(), strict=False)
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped:
        mapped = network.network_address.ipv4_mapped
        return ipaddress.ip_network(f"{mapped}/{max(network.prefixlen - 96, 0)}", strict=False)
    return network


def _contains(networks: Iterable[Network], address: Address) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def client_address(request: web.Request, trusted_proxies: list[Network]) -> str:
    """The client's IP for a request (see `forwarded_client`)."""
    return forwarded_client(request.remote or "", request.headers.getall("X-Forwarded-For", []),
                            trusted_proxies)


def forwarded_client(peer_text: str, forwarded_for: list[str],
                     trusted_proxies: list[Network]) -> str:
    """The client's IP. `X-Forwarded-For` counts only when the peer is a trusted proxy; then
    the right-most address that is not itself a trusted proxy is the client."""
    peer = parse_address(peer_text)
    if peer is None:
        return peer_text or "unknown"
    if not trusted_proxies or not _contains(trusted_proxies, peer):
        return str(peer)
    hops = [hop for header in forwarded_for for hop in header.split(",")]
    client = peer
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:
            break  # garbage from beyond the proxy: trust nothing further left
        client = address
        if not _contains(trusted_proxies, address):
            break
    return str(client)


def client_ip(request: web.Request) -> str:
    """The client's IP as the guard middleware established it."""
    ip: str = request.get("client_ip") or request.remote or "unknown"
    return ip


@dataclass(frozen=True)
class AllowEntry:
    cidr: str
    note: str
    source: str  # "config" (always allowed, not removable at run time) or "admin"
    added_ms: int = 0


class AllowList:
    """Addresses and ranges allowed in: the config file's, plus those added at run time."""

    def __init__(self, config_entries: list[str]) -> None:
        self._entries: dict[str, AllowEntry] = {}
        for text in config_entries:
            cidr = str(parse_network(text))
            self._entries[cidr] = AllowEntry(cidr, "from the config file", "config")
        self._rebuild()

    def _rebuild(self) -> None:
        self._networks = [parse_network(e.cidr) for e in self._entries.values()]
        self._verdicts: dict[str, bool] = {}

    def entries(self) -> list[AllowEntry]:
        return list(self._entries.values())

    def allows(self, ip: str) -> bool:
        verdict = self._verdicts.get(ip)
        if verdict is None:
            address = parse_address(ip)
            verdict = address is not None and _contains(self._networks, address)
            if len(self._verdicts) > 10_000:
                self._verdicts.clear()
            self._verdicts[ip] = verdict
        return verdict

    def add(self, cidr: str, note: str, added_ms: int) -> AllowEntry:
        """Allow a range (ValueError when `cidr` is not one); returns its normal form."""
        normal = str(parse_network(cidr))
        existing = self._entries.get(normal)
        if existing is not None and existing.source == "config":
            return existing
        entry = AllowEntry(normal, note, "admin", added_ms)
        self._entries[normal] = entry
        self._rebuild()
        return entry

    def remove(self, cidr: str) -> AllowEntry | None:
        """Forget a run-time entry and return it; None when there is none. A config entry is
        returned as it is and stays (the caller refuses to remove it)."""
        normal = str(parse_network(cidr))
        entry = self._entries.get(normal)
        if entry is not None and entry.source != "config":
            del self._entries[normal]
            self._rebuild()
        return entry

    def sync(self, stored: list[tuple[str, str, int]]) -> None:
        """Make the run-time entries those of the store (another process may change it)."""
        wanted = {str(parse_network(c)): (note, ms) for c, note, ms in stored}
        current = {c for c, e in self._entries.items() if e.source == "admin"}
        if current == set(wanted) and all(
            self._entries[c].note == wanted[c][0] for c in current
        ):
            return
        self._entries = {c: e for c, e in self._entries.items() if e.source == "config"}
        for cidr, (note, ms) in wanted.items():
            self._entries.setdefault(cidr, AllowEntry(cidr, note, "admin", ms))
        self._rebuild()


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


class RateLimiter:
    """At most `limit` requests in any one-second window per key (a sliding log).

    Keys idle for a second are forgotten on the next sweep, so memory follows the number of
    clients and products asked in the last second.
    """

    def __init__(self, window: float = 1.0) -> None:
        self._window = window
        self._log: dict[tuple[str, ...], deque[float]] = {}
        self._last_sweep = time.monotonic()

    def check(self, keys: list[tuple[str, ...]], limit: int, what: list[str]) -> None:
        """Record one request for each key, or raise RateLimited naming what is over."""
        now = time.monotonic()
        if now - self._last_sweep > 10 * self._window:
            self._sweep(now)
        over: list[str] = []
        wait = 0.0
        for key, name in zip(keys, what, strict=True):
            times = self._log.get(key)
            if times is not None and len(times) >= limit and now - times[0] < self._window:
                over.append(name)
                wait = max(wait, self._window - (now - times[0]))
        if over:
            raise RateLimited(f"rate limited: {', '.join(over)} (at most {limit} per second)",
                              retry_after=wait)
        for key in keys:
            times = self._log.get(key)
            if times is None or times.maxlen != limit:
                times = self._log[key] = deque(times or (), maxlen=limit)
            times.append(now)

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        stale = [k for k, t in self._log.items() if not t or now - t[-1] >= self._window]
        for key in stale:
            del self._log[key]


class MessageBudget:
    """A token bucket for one WebSocket's incoming messages: `rate` a second, bursts of `rate`."""

    __slots__ = ("_last", "_last_drop", "_rate", "_tokens", "over_since", "warned_at")

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._tokens = rate
        self._last = time.monotonic()
        self._last_drop = 0.0
        self.over_since = 0.0
        """When the client went over and stayed over (a drop at least every second); 0 if not."""
        self.warned_at = 0.0

    def take(self, now: float) -> bool:
        self._tokens = min(self._rate, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            if self.over_since and now - self._last_drop > 1.0:
                self.over_since = 0.0
            return True
        if not self.over_since:
            self.over_since = now
        self._last_drop = now
        return False
