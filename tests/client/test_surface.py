"""The SDK's public surface is pinned, and importing it stays light."""

from __future__ import annotations

import json
import subprocess
import sys

import tickwire

SURFACE = [
    "AsyncClient", "Backoff", "BadRequest", "Bar", "Bars", "Category", "Client",
    "ConnectionLost", "Event", "Level", "Limits", "NotAuthorized", "NotFound", "Quote",
    "RateLimited", "ServerError", "Stream", "Subscription", "Symbol", "SymbolPage",
    "SyncStream", "SyncSubscription", "TickwireError", "Trade", "UnknownCode", "__version__",
]


def test_all_is_pinned() -> None:
    assert tickwire.__all__ == SURFACE
    for name in SURFACE:
        assert hasattr(tickwire, name), name


def test_exception_tree() -> None:
    for name, status in [("NotAuthorized", 403), ("RateLimited", 429), ("NotFound", 404),
                         ("BadRequest", 400), ("ServerError", 500), ("ConnectionLost", 0),
                         ("UnknownCode", 404)]:
        cls = getattr(tickwire, name)
        assert issubclass(cls, tickwire.TickwireError) and cls.status == status
    assert issubclass(tickwire.UnknownCode, tickwire.NotFound)


def test_importing_the_sdk_loads_no_server_store_or_redis() -> None:
    code = ("import sys, json, tickwire, tickwire.client; "
            "print(json.dumps(sorted(sys.modules)))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], check=True,
                                       capture_output=True, text=True).stdout)
    forbidden = [m for m in loaded if m.startswith((
        "aiohttp.web", "sqlite3", "_sqlite3", "redis", "tickwire.gateway", "tickwire.engine",
        "tickwire.feeds", "tickwire.market", "tickwire.config", "rich", "typer"))]
    assert forbidden == []
