"""The embedded store: SQLite in WAL mode, written by one thread in batched transactions.

Writes are buffered in memory (the newest version of each bar wins) and committed every
`flush_interval` seconds, so a `kill -9` loses at most that much; the primary key
(code, interval, open time) makes a duplicate bar impossible.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import msgspec

from tickwire.market.bars import BarRow
from tickwire.market.quotes import DayStats
from tickwire.market.state import StoredBar

log = logging.getLogger("tickwire.store")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bars (
    code TEXT NOT NULL, interval TEXT NOT NULL, open_ms INTEGER NOT NULL,
    open REAL NOT NULL, high REAL NOT NULL, low REAL NOT NULL, close REAL NOT NULL,
    volume REAL NOT NULL,
    PRIMARY KEY (code, interval, open_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS day_stats (code TEXT PRIMARY KEY, stats BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS allow (
    cidr TEXT PRIMARY KEY, note TEXT NOT NULL DEFAULT '', added_ms INTEGER NOT NULL
);
"""

_UPSERT_BAR = "INSERT OR REPLACE INTO bars VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_UPSERT_STATS = "INSERT OR REPLACE INTO day_stats VALUES (?, ?)"

_stats_encoder = msgspec.json.Encoder()
_stats_decoder = msgspec.json.Decoder(DayStats)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # durable against process crashes in WAL mode
    return conn


class SqliteStore:
    def __init__(self, path: Path, flush_interval: float = 0.25) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.flush_interval = flush_interval
        self._writer = _connect(path)
        self._writer.executescript(_SCHEMA)
        self._readers = threading.local()
        self._lock = threading.Lock()  # guards the write buffers
        self._wlock = threading.Lock()  # serializes use of the writer connection
        self._bars: dict[tuple[str, str, int], BarRow] = {}
        self._stats: dict[str, bytes] = {}
        self._wake = threading.Event()
        self._stopping = False
        self.rows_written = 0
        self.last_flush = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="tickwire-store", daemon=True)
        self._thread.start()

    # writing -----------------------------------------------------------------------------

    def put(self, closed: Iterable[StoredBar], forming: Iterable[StoredBar],
            stats: Iterable[tuple[str, DayStats]]) -> None:
        encoded = [(code, _stats_encoder.encode(s)) for code, s in stats]
        with self._lock:
            bars = self._bars
            for code, interval, row in closed:
                bars[(code, interval, row[0])] = row
            for code, interval, row in forming:
                bars[(code, interval, row[0])] = row
            self._stats.update(encoded)

    @property
    def pending(self) -> int:
        """Bars waiting to be written."""
        return len(self._bars)

    def flush(self) -> None:
        """Write everything buffered now, in the caller's thread."""
        with self._lock:
            bars, self._bars = self._bars, {}
            stats, self._stats = self._stats, {}
        if not bars and not stats:
            self.last_flush = time.monotonic()
            return
        with self._wlock:
            self._writer.execute("BEGIN")
            self._writer.executemany(
                _UPSERT_BAR, [(c, i, *row) for (c, i, _), row in bars.items()]
            )
            self._writer.executemany(_UPSERT_STATS, list(stats.items()))
            self._writer.execute("COMMIT")
        self.rows_written += len(bars)
        self.last_flush = time.monotonic()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self.flush()
            except sqlite3.Error:
                log.exception("store flush failed; will retry")
                time.sleep(self.flush_interval)

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join()
        self.flush()
        self._writer.close()

    # reading -----------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._readers, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA query_only=1")
            self._readers.conn = conn
        return conn

    def is_empty(self) -> bool:
        return self._reader().execute("SELECT 1 FROM bars LIMIT 1").fetchone() is None

    def read_bars(self, code: str, interval: str, rows: int, end_ms: int | None) -> list[BarRow]:
        cursor = self._reader().execute(
            "SELECT open_ms, open, high, low, close, volume FROM bars"
            " WHERE code = ? AND interval = ? AND open_ms <= ? ORDER BY open_ms DESC LIMIT ?",
            (code, interval, end_ms if end_ms is not None else 2**62, rows),
        )
        return cursor.fetchall()

    def count_bars(self) -> int:
        row = self._reader().execute("SELECT count(*) FROM bars").fetchone()
        return int(row[0])

    def load_stats(self) -> dict[str, DayStats]:
        rows = self._reader().execute("SELECT code, stats FROM day_stats").fetchall()
        return {code: _stats_decoder.decode(blob) for code, blob in rows}

    # the run-time allow-list ---------------------------------------------------------------

    def allow_entries(self) -> list[tuple[str, str, int]]:
        return self._reader().execute(
            "SELECT cidr, note, added_ms FROM allow ORDER BY added_ms"
        ).fetchall()

    def add_allow(self, cidr: str, note: str) -> None:
        with self._wlock:
            self._writer.execute(
                "INSERT OR REPLACE INTO allow VALUES (?, ?, ?)",
                (cidr, note, int(time.time() * 1000)),
            )

    def remove_allow(self, cidr: str) -> bool:
        with self._wlock:
            cursor = self._writer.execute("DELETE FROM allow WHERE cidr = ?", (cidr,))
        return cursor.rowcount > 0
