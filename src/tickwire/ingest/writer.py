"""The store writer: the market's changes reach SQLite from a thread of its own.

Changes wait in memory (the newest version of each bar and of each product's day
statistics wins) until a batch is committed: a batch leaves the buffer only once its
transaction has committed, so a write that fails (a full or read-only disk) loses nothing;
it is retried with a capped backoff, logged once per outage, and reported as failing
(`/healthz` says `degraded`) until a write succeeds again.

Bound: at most `max_pending` bars wait. Beyond it the oldest waiting bars are dropped and
counted (`dropped_bars`); the newest bars of every window stay served from memory, and a
bar still forming is handed over again with its next change.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable

from tickwire.engine.sqlite import SqliteStore
from tickwire.market.bars import BarRow
from tickwire.market.quotes import DayStats
from tickwire.market.state import StoredBar

log = logging.getLogger("tickwire.store")

MAX_PENDING_BARS = 1_000_000
"""Bars that may wait for the store (about 250 MB; hours of a full catalogue's bars)."""

RETRY_FIRST, RETRY_MOST = 0.25, 5.0
"""Seconds before the first retry of a failed write, doubling up to the most."""

_BarKey = tuple[str, str, int]


class StoreWriter:
    def __init__(self, store: SqliteStore, max_pending: int = MAX_PENDING_BARS,
                 idle_wait: float = 1.0,
                 retry: tuple[float, float] = (RETRY_FIRST, RETRY_MOST)) -> None:
        self.store = store
        self.max_pending = max_pending
        self._idle_wait = idle_wait
        self._retry = retry
        self._lock = threading.Lock()  # guards the buffers and the counters
        self._flushing = threading.Lock()
        """One flush at a time, taking and writing: a flush from another thread (a test's,
        the last one at close) waits for the writer's own, so an older batch is never
        written over a newer one."""
        self._bars: dict[_BarKey, BarRow] = {}
        self._stats: dict[str, DayStats] = {}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self.rows_written = 0
        self.dropped_bars = 0
        self.last_write = time.monotonic()
        self.failing_since: float | None = None
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="tickwire-store", daemon=True)
        self._thread.start()

    # the ingest's side -------------------------------------------------------------------

    def put(self, closed: Iterable[StoredBar], forming: Iterable[StoredBar],
            stats: Iterable[tuple[str, DayStats]]) -> None:
        """Changes to store; the thread writes them at once (see `flush`)."""
        with self._lock:
            bars = self._bars
            for code, interval, row in closed:
                bars[(code, interval, row[0])] = row
            for code, interval, row in forming:
                bars[(code, interval, row[0])] = row
            self._stats.update(stats)
            if len(bars) > self.max_pending:
                self._drop_oldest(len(bars) - self.max_pending)
        self._wake.set()

    def _drop_oldest(self, count: int) -> None:
        if not self.dropped_bars:
            log.error("store writer over its bound: dropping the oldest waiting bars",
                      extra={"max_pending_bars": self.max_pending})
        for key in list(self._bars)[:count]:
            del self._bars[key]
        self.dropped_bars += count

    @property
    def pending(self) -> int:
        """Bars waiting to be written."""
        return len(self._bars)

    @property
    def ok(self) -> bool:
        return self.failing_since is None

    def health(self) -> dict[str, object]:
        failing = self.failing_since
        return {
            "state": "ok" if failing is None else "failing",
            "pending_bars": self.pending, "rows_written": self.rows_written,
            "last_write_age_s": round(time.monotonic() - self.last_write, 3),
            "dropped_bars": self.dropped_bars,
            **({} if failing is None else {
                "error": self.error, "failing_for_s": round(time.monotonic() - failing, 1)}),
        }

    # writing -----------------------------------------------------------------------------

    def flush(self) -> None:
        """Write everything waiting now, in the caller's thread (after any flush under way
        in another). On an error what was taken goes back into the buffer (under anything
        newer put meanwhile) and the error is raised."""
        with self._flushing:
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            bars, self._bars = self._bars, {}
            stats, self._stats = self._stats, {}
        if not bars and not stats:
            self.last_write = time.monotonic()
            return
        try:
            self.store.write(((c, i, row) for (c, i, _), row in bars.items()), stats)
        except BaseException:
            with self._lock:
                bars.update(self._bars)  # what came in meanwhile is newer
                stats.update(self._stats)
                self._bars, self._stats = bars, stats
            raise
        with self._lock:
            self.rows_written += len(bars)
        self.last_write = time.monotonic()

    def _run(self) -> None:
        first, most = self._retry
        delay = first
        while not self._stopping.is_set():
            if self.failing_since is None:  # else retry as soon as the backoff is over
                self._wake.wait(self._idle_wait)
                self._wake.clear()
            try:
                self.flush()
            except (sqlite3.Error, OSError) as exc:
                self._failed(exc)
                self._pause(delay)
                delay = min(delay * 2, most)
                continue
            delay = first
            if self.failing_since is not None:
                log.warning("store writing again", extra={
                    "after_s": round(time.monotonic() - self.failing_since, 1),
                    "rows_written": self.rows_written})
                self.failing_since, self.error = None, None

    def _pause(self, seconds: float) -> None:
        """Wait before a retry, in short sleeps, and stop early when the writer closes.
        (Sleeps rather than a timed `Event.wait`, whose deadline is taken on a clock that
        tools which shift the clock, such as faketime, move but do not wait on.)"""
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set() and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.05))

    def _failed(self, exc: BaseException) -> None:
        self.error = f"{type(exc).__name__}: {exc}"
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            log.error("store cannot write; keeping changes in memory and retrying",
                      extra={"error": self.error, "pending_bars": self.pending})

    def close(self) -> None:
        """Stop the thread and write what waits, once more; a failure is logged."""
        self._stopping.set()
        self._wake.set()
        self._thread.join()
        try:
            self.flush()
        except (sqlite3.Error, OSError) as exc:
            log.error("store could not write at shutdown; changes lost",
                      extra={"error": f"{type(exc).__name__}: {exc}",
                             "pending_bars": self.pending})
