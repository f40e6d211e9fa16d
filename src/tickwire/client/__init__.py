"""The tickwire SDK: `AsyncClient`, `Client` (sync), streams, models.

Importing it loads the aiohttp client and msgspec only: no server, no store.
"""

from tickwire.client.aio import AsyncClient
from tickwire.client.backoff import Backoff
from tickwire.client.events import Event
from tickwire.client.limits import Limits
from tickwire.client.models import (
    Bar,
    Bars,
    Category,
    Level,
    Quote,
    Symbol,
    SymbolPage,
    Trade,
)
from tickwire.client.stream import Stream, Subscription
from tickwire.client.sync import Client, SyncStream, SyncSubscription
from tickwire.client.urls import DEFAULT_HTTP_URL, DEFAULT_WS_URL, ws_url_for

__all__ = [
    "DEFAULT_HTTP_URL",
    "DEFAULT_WS_URL",
    "AsyncClient",
    "Backoff",
    "Bar",
    "Bars",
    "Category",
    "Client",
    "Event",
    "Level",
    "Limits",
    "Quote",
    "Stream",
    "Subscription",
    "Symbol",
    "SymbolPage",
    "SyncStream",
    "SyncSubscription",
    "Trade",
    "ws_url_for",
]
