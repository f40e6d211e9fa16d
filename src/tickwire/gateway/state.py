"""What one gateway holds, in one place for the handlers (`request.app[GATEWAY]`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from tickwire.config import Config
from tickwire.engine.base import Engine

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


GATEWAY = web.AppKey("gateway", Gateway)
