"""What one gateway holds, in one place for the handlers (`request.app[GATEWAY]`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from tickwire.config import Config
from tickwire.engine.base import AllowSnapshot, Engine

if TYPE_CHECKING:
    from tickwire.gateway.access import AllowList, Network
    from tickwire.gateway.guards import Refusals
    from tickwire.gateway.ws import Hub


@dataclass(eq=False)
class Gateway:
    config: Config
    engine: Engine
    hub: Hub
    refusals: Refusals
    allow_list: AllowList
    trusted_proxies: list[Network]
    requests: Counter[str] = field(default_factory=Counter)
    """Requests of each protocol path answered or refused by its rate limit (/metrics)."""

    def known(self, code: str) -> bool:
        return code in self.engine.catalogue().products

    def take_allow_list(self, snapshot: AllowSnapshot) -> None:
        """Apply the store's allow-list, unless it is stale (see `AllowList.apply`); the
        WebSockets of an address it no longer allows are closed there and then, so that a
        revocation holds for connections already open too."""
        if self.allow_list.apply(snapshot):
            self.hub.close_unallowed(self.allow_list.allows)


GATEWAY = web.AppKey("gateway", Gateway)
