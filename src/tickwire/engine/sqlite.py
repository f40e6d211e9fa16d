"""The embedded store: K-line history, day statistics and the run-time allow-list in SQLite.

WAL mode, so readers never wait for the writer. Bars are written in batches by the ingest's
store writer (`tickwire.ingest.writer`), one transaction per batch: the primary key (code,
interval, open time) makes a duplicate bar impossible, and a batch is all or nothing.
The allow-list carries a version bumped in the same transaction as each change.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import msgspec

from tickwire.engine.base import AllowSnapshot, StoredAllow
from tickwire.market.bars import BarRow
from tickwire.market.quotes import DayStats
from tickwire.market.state import StoredBar

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
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('allow_version', 0);
"""

_UPSERT_BAR = "INSERT OR REPLACE INTO bars VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_UPSERT_STATS = "INSERT OR REPLACE INTO day_stats VALUES (?, ?)"
_BUMP_ALLOW = "UPDATE meta SET value = value + 1 WHERE key = 'allow_version'"

_stats_encoder = msgspec.json.Encoder()
_stats_decoder = msgspec.json.Decoder(DayStats)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # durable against process crashes in WAL mode
    return conn


class SqliteStore:
    """The database file at `path`: one writer connection (used by one thread at a time),
    one reader connection per thread."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._writer = _connect(path)
        self._writer.executescript(_SCHEMA)
        self._readers = threading.local()
        self._wlock = threading.Lock()

    # writing -----------------------------------------------------------------------------

    def write(self, bars: Iterable[StoredBar], stats: Mapping[str, DayStats]) -> None:
        """Commit bars and day statistics in one transaction; on an error nothing of it is
        written and the error is raised (`sqlite3.Error`)."""
        bar_rows = [(code, interval, *row) for code, interval, row in bars]
        stat_rows = [(code, _stats_encoder.encode(s)) for code, s in stats.items()]
        with self._wlock:
            conn = self._writer
            conn.execute("BEGIN")
            try:
                conn.executemany(_UPSERT_BAR, bar_rows)
                conn.executemany(_UPSERT_STATS, stat_rows)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._wlock:
            self._writer.close()
        reader: sqlite3.Connection | None = getattr(self._readers, "conn", None)
        if reader is not None:
            reader.close()
            self._readers.conn = None

    # reading -----------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._readers, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30,
                                   isolation_level=None)
            conn.execute("PRAGMA query_only=1")
            self._readers.conn = conn
        return conn

    def is_empty(self) -> bool:
        return self._reader().execute("SELECT 1 FROM bars LIMIT 1").fetchone() is None

    def read_bars(self, code: str, interval: str, rows: int, end_ms: int | None) -> list[BarRow]:
        """Up to `rows` bars with open time <= end_ms (any when None), newest first."""
        cursor = self._reader().execute(
            "SELECT open_ms, open, high, low, close, volume FROM bars"
            " WHERE code = ? AND interval = ? AND open_ms <= ? ORDER BY open_ms DESC LIMIT ?",
            (code, interval, end_ms if end_ms is not None else 2**62, rows),
        )
        bars: list[BarRow] = cursor.fetchall()
        return bars

    def count_bars(self) -> int:
        row = self._reader().execute("SELECT count(*) FROM bars").fetchone()
        return int(row[0])

    def load_stats(self) -> dict[str, DayStats]:
        rows = self._reader().execute("SELECT code, stats FROM day_stats").fetchall()
        return {code: _stats_decoder.decode(blob) for code, blob in rows}

    # the run-time allow-list ---------------------------------------------------------------

    def allow_list(self) -> AllowSnapshot:
        """The entries and their version, read in one transaction."""
        conn = self._reader()
        conn.execute("BEGIN")
        try:
            return self._allow_snapshot(conn)
        finally:
            conn.execute("COMMIT")

    @staticmethod
    def _allow_snapshot(conn: sqlite3.Connection) -> AllowSnapshot:
        (version,) = conn.execute(
            "SELECT value FROM meta WHERE key = 'allow_version'").fetchone()
        rows = conn.execute("SELECT cidr, note, added_ms FROM allow ORDER BY added_ms, cidr")
        return AllowSnapshot(int(version), [StoredAllow(*row) for row in rows])

    def allow_add(self, cidr: str, note: str) -> AllowSnapshot:
        return self._change_allow("INSERT OR REPLACE INTO allow VALUES (?, ?, ?)",
                                  (cidr, note, int(time.time() * 1000)))[1]

    def allow_remove(self, cidr: str) -> tuple[bool, AllowSnapshot]:
        return self._change_allow("DELETE FROM allow WHERE cidr = ?", (cidr,))

    def _change_allow(self, sql: str, args: tuple[object, ...]) -> tuple[bool, AllowSnapshot]:
        """Change the list and bump its version in one transaction; the snapshot after it."""
        with self._wlock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                changed = conn.execute(sql, args).rowcount > 0
                if changed:
                    conn.execute(_BUMP_ALLOW)
                snapshot = self._allow_snapshot(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return changed, snapshot
