"""tickwire: a self-hosted real-time market-data server, and its Python SDK.

This package's top level is the SDK (clients, models, errors); it imports only client-side
modules, so `import tickwire` never loads the server, SQLite or Redis.
"""

from tickwire.client import (
    AsyncClient,
    Backoff,
    Bar,
    Bars,
    Category,
    Client,
    Event,
    Level,
    Limits,
    Quote,
    Stream,
    Subscription,
    Symbol,
    SymbolPage,
    SyncStream,
    SyncSubscription,
    Trade,
)
from tickwire.errors import (
    BadRequest,
    ConnectionLost,
    NotAuthorized,
    NotFound,
    RateLimited,
    ServerError,
    TickwireError,
    UnknownCode,
)

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "Backoff",
    "BadRequest",
    "Bar",
    "Bars",
    "Category",
    "Client",
    "ConnectionLost",
    "Event",
    "Level",
    "Limits",
    "NotAuthorized",
    "NotFound",
    "Quote",
    "RateLimited",
    "ServerError",
    "Stream",
    "Subscription",
    "Symbol",
    "SymbolPage",
    "SyncStream",
    "SyncSubscription",
    "TickwireError",
    "Trade",
    "UnknownCode",
    "__version__",
]
