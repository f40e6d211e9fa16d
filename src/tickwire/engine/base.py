"""The engine: what the processes of one deployment share, behind one interface.

The ingest writes through it (encoded updates, the latest quotes, K-lines, its own status);
the gateway reads through it and keeps its counters there (the allow-list, WebSockets per
IP, rate limits). One process wires both to the memory engine (`engine.memory`); a
scale-out engine keeps the same things where several processes can reach them. The
contract every engine keeps is the suite in `tests/engine/`.

Calls that a shared engine answers over the network are coroutines; those on the path of
every update (`publish`, `watched`) and the ingest's reports (`report`, `bars`) are plain
calls, so an engine that needs I/O for them queues the work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

import msgspec

from tickwire.catalogue import Catalogue
from tickwire.market.state import StoredBar

Published = list[tuple[str, bytes]]
"""A batch of (product code, encoded quote body), in the order the updates happened."""


class StoredAllow(msgspec.Struct, frozen=True):
    """An allow-list entry added at run time (the config file's entries are not stored)."""

    cidr: str
    note: str
    added_ms: int


class AllowSnapshot(NamedTuple):
    """The run-time allow-list as of one `version`. Every change bumps the version together
    with the entries, so a reader that has applied version N ignores any snapshot <= N: a
    slow read can never undo a change applied after it began."""

    version: int
    entries: list[StoredAllow]


class IngestStatus(msgspec.Struct):
    """What the ingest reports about itself, for `/healthz` and `/metrics`."""

    ready: bool = False
    """Every feed has been live (or has finished) once."""
    feeds: list[dict[str, object]] = []
    store: dict[str, object] = {}
    store_ok: bool = True
    """False while the store cannot write (the changes wait, bounded, and are retried)."""
    record: dict[str, object] = {}
    """The recorder's health (`{"state": "off"}` without `[record]`)."""
    record_ok: bool = True
    """False while the recorder cannot write (the lines wait, bounded, and are retried)."""
    updates_in: int = 0
    unknown: int = 0
    """Updates of codes that are not in the catalogue (dropped)."""


class RateVerdict(NamedTuple):
    """The answer of a rate-limit check: which keys are over, and how long until one fits."""

    over: list[int]
    """Indexes of the keys over their limit (nothing was counted when any is)."""
    retry_after: float


class Engine(Protocol):
    kind: str

    # the catalogue ------------------------------------------------------------------------

    def catalogue(self) -> Catalogue:
        """The categories and products being served."""
        ...

    # updates: the ingest's side -----------------------------------------------------------

    def publish(self, batch: Published) -> None:
        """Hand encoded updates to every gateway watching their products."""
        ...

    def watched(self, code: str) -> bool:
        """Whether a gateway watches `code` (the ingest encodes every update of those)."""
        ...

    def report(self, status: IngestStatus) -> None:
        """The ingest's status, reported a few times a second."""
        ...

    def bars(self, closed: list[StoredBar], forming: list[StoredBar]) -> None:
        """The market's K-line changes since the last call (what the store writer is handed
        too): bars that closed, and the bars forming now."""
        ...

    def restored(self) -> None:
        """The ingest's market was loaded again from the store (`Ingest.restore`)."""
        ...

    # updates: the gateway's side ----------------------------------------------------------

    def subscribe(self, handler: Callable[[Published], None]) -> None:
        """Call `handler` with each published batch (of watched codes)."""
        ...

    def watch(self, code: str) -> None:
        """This gateway has a subscriber for `code` (counted: call `unwatch` as often)."""
        ...

    def unwatch(self, code: str) -> None: ...

    async def latest(self, codes: list[str]) -> list[bytes | None]:
        """The newest encoded quote of each code (None: unknown, or no update yet)."""
        ...

    async def klines(self, code: str, interval: str, rows: int,
                     end_ms: int | None) -> list[bytes]:
        """Up to `rows` encoded bars of `code` with open time <= `end_ms` (any when None),
        newest first; the forming bar included. From memory where the window holds them,
        else from the whole stored history."""
        ...

    async def status(self) -> IngestStatus | None:
        """The ingest's newest report; None before the first."""
        ...

    # access -------------------------------------------------------------------------------

    async def allow_list(self) -> AllowSnapshot: ...

    async def allow_changed(self, within: float) -> None:
        """Return when the allow-list may have changed elsewhere (another gateway, `tickwire
        allow`), or after `within` seconds at the latest."""
        ...

    async def allow_add(self, cidr: str, note: str) -> AllowSnapshot:
        """Store an entry (`cidr` in normal form); the snapshot that includes it."""
        ...

    async def allow_remove(self, cidr: str) -> tuple[bool, AllowSnapshot]:
        """Forget an entry; whether there was one, and the snapshot without it."""
        ...

    async def ws_acquire(self, ip: str, cap: int) -> bool:
        """Count one more WebSocket of `ip`, unless it has `cap` already (then False)."""
        ...

    async def ws_release(self, ip: str) -> None: ...

    async def rate_check(self, keys: list[str], limit: int) -> RateVerdict:
        """Count one request for each key, unless any key has had `limit` in the last
        second: then count nothing and say which."""
        ...

    def health(self) -> dict[str, object]:
        """The engine's own state, for `/healthz`; `"ok": False` in it makes the server
        `degraded`."""
        ...

    async def start(self) -> None:
        """Begin the engine's own work (connections, background tasks) before serving. An
        engine whose server cannot be reached starts anyway and keeps trying."""
        ...

    async def close(self) -> None: ...
