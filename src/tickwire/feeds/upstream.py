"""What an upstream server lists: its categories and products, asked once at start.

A relay's products, their names and categories are the upstream's. The answer is kept in
the data dir, so a restart while the upstream is down still serves the products it relays
(their stored history and last quotes) and relays them as soon as the upstream is back.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import msgspec

from tickwire.client.aio import AsyncClient
from tickwire.client.limits import Limits
from tickwire.errors import TickwireError
from tickwire.feeds.kept import NothingKept, asked_or_kept
from tickwire.models import Category

log = logging.getLogger("tickwire.feeds.relay")

LISTING_TIMEOUT = 10.0
"""Seconds one request for the upstream's lists may take at start."""


class UpstreamError(ConnectionError):
    """The upstream's lists could not be had, and none were kept from an earlier start."""


class Listed(msgspec.Struct, frozen=True):
    code: str
    name: str
    category: str


class Listing(msgspec.Struct, frozen=True):
    """The upstream's categories in their order, and every product they list."""

    categories: list[Category]
    products: list[Listed]


async def fetch_listing(http_url: str, timeout: float = LISTING_TIMEOUT) -> Listing:
    """The upstream's categories and symbol lists, within its rate limits."""
    async with AsyncClient(http_url, timeout=timeout, retries=1, limits=Limits()) as client:
        categories = await client.categories()
        products: list[Listed] = []
        for category in categories:
            for symbol in await client.all_symbols(category.id):
                products.append(Listed(symbol.code, symbol.name or symbol.code, category.id))
    return Listing(categories, products)


def _kept_at(data_dir: Path, http_url: str) -> Path:
    digest = hashlib.sha256(http_url.encode()).hexdigest()[:12]
    return data_dir / "relay" / f"listing-{digest}.json"


def listing(http_url: str, data_dir: Path) -> Listing:
    """The upstream's lists, asked now; the ones kept from an earlier start if it cannot be
    asked (logged); `UpstreamError` if there are none."""
    try:
        found, why = asked_or_kept(_kept_at(data_dir, http_url),
                                   lambda: fetch_listing(http_url), Listing,
                                   (TickwireError, OSError, ValueError))
    except NothingKept as exc:
        raise UpstreamError(f"cannot list the products of {http_url}: {exc}") from None
    if why is not None:
        log.warning("upstream unreachable: relaying the products it listed before",
                    extra={"upstream": http_url, "error": why, "products": len(found.products)})
    return found
