"""Who the client is (its address, behind trusted proxies) and whether it may come in."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web

from tickwire.engine.base import AllowSnapshot

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


CLIENT_IP = web.RequestKey("client_ip", str)
"""The client's IP as the allow-list guard established it."""


def client_ip(request: web.Request) -> str:
    """The client's IP as the guard middleware established it."""
    return request.get(CLIENT_IP) or request.remote or "unknown"


@dataclass(frozen=True)
class AllowEntry:
    cidr: str
    note: str
    source: str  # "config" (always allowed, not removable at run time) or "admin"
    added_ms: int = 0


class AllowList:
    """Addresses and ranges allowed in: the config file's, plus those added at run time.

    The run-time entries come from the engine's store, the one source of truth, as
    versioned snapshots; a snapshot no newer than the one applied is ignored, so a slow
    read can never bring back an entry removed since (or drop one just added)."""

    def __init__(self, config_entries: list[str]) -> None:
        self._config: dict[str, AllowEntry] = {}
        for text in config_entries:
            cidr = str(parse_network(text))
            self._config[cidr] = AllowEntry(cidr, "from the config file", "config")
        self._added: dict[str, AllowEntry] = {}
        self.version = -1
        self._rebuild()

    def _rebuild(self) -> None:
        self._networks = [parse_network(cidr) for cidr in (*self._config, *self._added)]
        self._verdicts: dict[str, bool] = {}

    def entries(self) -> list[AllowEntry]:
        return [*self._config.values(),
                *(e for cidr, e in self._added.items() if cidr not in self._config)]

    def find(self, cidr: str) -> AllowEntry | None:
        """The entry of a range in normal form (the config file's first)."""
        return self._config.get(cidr) or self._added.get(cidr)

    def allows(self, ip: str) -> bool:
        verdict = self._verdicts.get(ip)
        if verdict is None:
            address = parse_address(ip)
            verdict = address is not None and _contains(self._networks, address)
            if len(self._verdicts) > 10_000:
                self._verdicts.clear()
            self._verdicts[ip] = verdict
        return verdict

    def apply(self, snapshot: AllowSnapshot) -> bool:
        """Take the store's run-time entries, unless this snapshot is not newer than the
        one applied; True when it was taken."""
        if snapshot.version <= self.version:
            return False
        self.version = snapshot.version
        self._added = {}
        for stored in snapshot.entries:
            try:
                cidr = str(parse_network(stored.cidr))
            except ValueError:
                continue  # not written by tickwire: ignore rather than refuse everyone
            self._added[cidr] = AllowEntry(cidr, stored.note, "admin", stored.added_ms)
        self._rebuild()
        return True
