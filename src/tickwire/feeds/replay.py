"""Replay: recorded data through the server at any speed, its own time driving the bars.

Three formats, told apart by the file's name:
- `*.csv`, trades: the header `time_ms,price,size,side` (`side` is `buy` or `sell`, the
  aggressor) and an optional `code` column; each line becomes one update at its own time;
- `*.jsonl` / `*.jsonl.gz`, quote bodies: the server's recording (`{"t": ms, "body":
  {...}}` a line, `[record]`) or `tickwire record`'s output (one body a line). Each body is
  served as it was recorded, byte for byte, at its own `LastTime`.

The feed's clock is the data's: bars close as the data's time passes them, quiet intervals
inside trading hours get flat bars, and at the end of the data the products stop there: no
bar is made up from the end of the data to now. A line that cannot be read, or whose time
goes backwards, is skipped, counted and logged once per file.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import glob
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from tickwire.client.models import Quote, decode_quote
from tickwire.feeds.base import FeedState, Sink
from tickwire.feeds.decode import BodyUpdates
from tickwire.feeds.record import read_lines
from tickwire.models import BUY, SELL, Update

if TYPE_CHECKING:
    from _csv import Reader as _CsvReader  # the type of `csv.reader(...)`

log = logging.getLogger("tickwire.feeds.replay")

SUFFIXES = (".csv", ".jsonl", ".jsonl.gz")
"""The files a replay reads: trades CSV, quote bodies, compressed quote bodies."""
TRADES_COLUMNS = ("time_ms", "price", "size", "side")
"""The columns every trades CSV has; a `code` column may come too."""
_SIDES = {"buy": BUY, "sell": SELL}
MAX_DECIMALS = 10
"""The most decimals a replayed product's prices and sizes keep."""
BATCH = 1_000
"""Updates handed over at once (and between two looks at the event loop) at speed 0."""
TICK = 0.02
"""Seconds of played time handed over at once at a set speed."""
DECIMALS_CACHE = 2**14
"""Numbers whose decimals are remembered while a file is read for its shape: prices keep
to a grid and come back, so most are worked out once."""


class ReplayError(ValueError):
    """Data that cannot be replayed at all: no such file, not a trades CSV."""


def replay_files(path: str) -> list[Path]:
    """The files of `path`: a file, the files of a folder that a replay reads (`SUFFIXES`),
    or a glob; in name order, which is time order for a recording's day files."""
    target = Path(path)
    if target.is_file():
        files = [target]
    else:
        found = target.iterdir() if target.is_dir() else (Path(p) for p in glob.glob(path))
        files = sorted(f for f in found if f.is_file() and f.name.endswith(SUFFIXES))
    if not files:
        raise ReplayError(f"no file to replay at {path} (trades *.csv, quote bodies "
                          "*.jsonl or *.jsonl.gz)")
    for f in files:
        if not f.name.endswith(SUFFIXES):
            raise ReplayError(f"{f}: not a file a replay reads (*.csv, *.jsonl, *.jsonl.gz)")
    return files


def _decimals_of(text: str) -> int:
    """Decimals a number is written with ("0.00134500" has 6 that count; "1e-5": 8)."""
    if "e" in text.lower():
        return 8
    fraction = text.strip().partition(".")[2]
    return min(len(fraction.rstrip("0")), MAX_DECIMALS)


_decimals = functools.lru_cache(maxsize=DECIMALS_CACHE)(_decimals_of)
"""`_decimals_of`, remembered for the latest numbers."""


@functools.lru_cache(maxsize=DECIMALS_CACHE)
def _float_decimals(value: float) -> int:
    """Decimals of a number as Python writes it (`repr`)."""
    return _decimals_of(repr(value))


@dataclass
class DataShape:
    """What a pass over the data learnt: its products and how many decimals each uses."""

    price_decimals: dict[str, int] = field(default_factory=dict)
    size_decimals: dict[str, int] = field(default_factory=dict)

    @property
    def codes(self) -> list[str]:
        return list(self.price_decimals)

    def note(self, code: str, price_decimals: int, size_decimals: int) -> None:
        """A product seen with prices and sizes of so many decimals."""
        prices, sizes = self.price_decimals, self.size_decimals
        if price_decimals > prices.get(code, -1):
            prices[code] = price_decimals
        if size_decimals > sizes.get(code, -1):
            sizes[code] = size_decimals


@dataclass
class Skipped:
    """Lines left out of a file, and why the first was."""

    count: int = 0
    first: str = ""


class _Source:
    """One file of a replay, and the lines it leaves out."""

    def __init__(self, path: Path, default_code: str) -> None:
        self.path = path
        self.default_code = default_code
        self.skipped = Skipped()

    def shape(self, into: DataShape) -> None:
        """Note the products and decimals of this file in `into`."""
        raise NotImplementedError

    def updates(self, shift_ms: int = 0) -> Iterator[Update]:
        """The file's updates in order, `shift_ms` later than written."""
        raise NotImplementedError

    def skip(self, line: int, why: str) -> None:
        """Count a line left out; the first of a file is logged."""
        if not self.skipped.count:
            self.skipped.first = f"line {line}: {why}"
            log.warning("replay skips a line", extra={"file": str(self.path), "line": line,
                                                      "why": why})
        self.skipped.count += 1


class TradesCsv(_Source):
    """One trades CSV: its updates in order, lines that cannot be used skipped.

    Rows are read as lists (`csv.reader`), the columns found by the header's names (a dict
    a row, `csv.DictReader`, took twice as long a line). A field missing from a short row
    reads as empty."""

    @contextmanager
    def _table(self) -> Iterator[tuple[_CsvReader, tuple[int, int, int, int, int]]]:
        """The file's rows after the header, and where in a row `time_ms`, `price`, `size`,
        `side` and `code` are (`code` -1 when there is none)."""
        try:
            handle = self.path.open(newline="", encoding="utf-8")
        except OSError as exc:
            raise ReplayError(f"{self.path}: {exc.strerror or exc}") from None
        with handle:
            reader = csv.reader(handle)
            columns = next(reader, [])
            where = {name: i for i, name in enumerate(columns)}  # the last of a name wins
            if not set(TRADES_COLUMNS) <= set(where):
                raise ReplayError(f"{self.path}: the header must have "
                                  f"{','.join(TRADES_COLUMNS)} (and may have code); "
                                  f"it has {','.join(columns)[:200]!r}")
            if "code" not in where and not self.default_code:
                raise ReplayError(f"{self.path}: no code column, and the feed names no code")
            t, p, s, d = (where[name] for name in TRADES_COLUMNS)
            yield reader, (t, p, s, d, where.get("code", -1))

    def shape(self, into: DataShape) -> None:
        default, note, decimals = self.default_code, into.note, _decimals
        with self._table() as (reader, (_, p, s, _, c)):
            last = max(p, s, c)
            for row in reader:
                if len(row) <= last:
                    row = _padded(row, last)
                price, size = row[p], row[s]
                try:
                    float(price), float(size)
                except ValueError:
                    continue
                note((row[c] if c >= 0 else "") or default, decimals(price), decimals(size))

    def updates(self, shift_ms: int = 0) -> Iterator[Update]:
        latest = -2**63
        default, sides = self.default_code, _SIDES
        with self._table() as (reader, (t, p, s, d, c)):
            last = max(t, p, s, d, c)
            for row in reader:
                if len(row) <= last:
                    if not row:
                        continue  # a blank line
                    row = _padded(row, last)
                try:
                    ts = int(row[t]) + shift_ms
                    price, size = float(row[p]), float(row[s])
                    side = sides[row[d].strip().lower()]
                except (ValueError, KeyError):
                    self.skip(reader.line_num, "a line that is not time_ms,price,size,side")
                    continue
                if ts < latest:
                    self.skip(reader.line_num, "a time earlier than the line before")
                    continue
                latest = ts
                yield Update((row[c] if c >= 0 else "") or default, ts, price, None, None,
                             [(price, size, side)])


def _padded(row: list[str], last: int) -> list[str]:
    """A short row with empty fields up to index `last`."""
    return row + [""] * (last + 1 - len(row))


class _Recorded(msgspec.Struct):
    """A line of the server's recording; a body line of `tickwire record` has neither key."""

    t: int = 0
    body: msgspec.Raw = msgspec.Raw(b"")


_recorded = msgspec.json.Decoder(_Recorded).decode


class QuoteBodies(_Source):
    """A file of quote bodies, one a line: the server's recording or `tickwire record`'s."""

    def _bodies(self) -> Iterator[tuple[int, bytes, Quote]]:
        """(line number, the body's bytes, the body decoded); bad lines skipped."""
        try:
            lines = read_lines(self.path)
            for number, line in enumerate(lines, start=1):
                try:
                    recorded = _recorded(line)
                    body = bytes(recorded.body) or line
                    quote = decode_quote(body)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    self.skip(number, "a line that is not a quote body")
                    continue
                if not quote.code or quote.last_time <= 0:
                    self.skip(number, "a body without StockCode or LastTime")
                    continue
                yield number, body, quote
        except OSError as exc:
            raise ReplayError(f"{self.path}: {exc.strerror or exc}") from None

    def shape(self, into: DataShape) -> None:
        note, decimals = into.note, _float_decimals
        for _, _, q in self._bodies():
            note(q.code,
                 max(decimals(q.price), decimals(q.open), decimals(q.high), decimals(q.low),
                     decimals(q.last_close), decimals(q.bid), decimals(q.ask)),
                 max(decimals(q.volume), decimals(q.last_size), decimals(q.bid_volume),
                     decimals(q.ask_volume)))

    def updates(self, shift_ms: int = 0) -> Iterator[Update]:
        """The bodies as updates; in a pass moved in time (a loop), the quotes are worked
        out here, as the recorded ones would show the old times."""
        made = BodyUpdates()
        latest = -2**63
        for number, body, quote in self._bodies():
            update = made.update(quote, body)
            if shift_ms:
                update.ts += shift_ms
                update.verbatim = None
            if update.ts < latest:
                self.skip(number, "a time earlier than the line before")
                continue
            latest = update.ts
            yield update


def source(path: Path, default_code: str) -> _Source:
    """The reader of one file, by its name (see `SUFFIXES`)."""
    if path.name.endswith(".csv"):
        return TradesCsv(path, default_code)
    return QuoteBodies(path, default_code)


def shape_of(files: list[Path], default_code: str) -> DataShape:
    shape = DataShape()
    for path in files:
        source(path, default_code).shape(shape)
    return shape


class ReplayFeed:
    """Plays recorded files (trades or quote bodies) at `speed` (0: as fast as it goes),
    once or in a loop."""

    def __init__(self, files: list[Path], codes: list[str], default_code: str = "",
                 speed: float = 1.0, loop: bool = False, name: str = "replay") -> None:
        self.name = name
        self.codes = codes
        self.files = files
        self.default_code = default_code
        self.speed = speed
        self.loop = loop
        self.state = FeedState.CONNECTING
        self.error: str | None = None
        self.updates = 0
        self.skipped = 0
        self.event_time = 0
        """The data's time played up to (ms)."""
        self.rounds = 0

    def status(self) -> dict[str, object]:
        return {"kind": "replay", "files": len(self.files), "speed": self.speed,
                "updates": self.updates, "skipped": self.skipped,
                "event_time_ms": self.event_time, "rounds": self.rounds}

    async def run(self, sink: Sink) -> None:
        self.state = FeedState.LIVE
        shift = 0
        while True:
            first, last = await self._play(sink, shift)
            self.rounds += 1
            if not self.loop or last < first:
                return
            shift += last - first + 1

    async def _play(self, sink: Sink, shift: int) -> tuple[int, int]:
        """One pass over the files; the first and last times played (ms)."""
        first = last = -1
        batch: list[Update] = []
        loop = asyncio.get_running_loop()
        began = loop.time()
        for path in self.files:
            reader = source(path, self.default_code)
            for update in reader.updates(shift):
                if first < 0:
                    first = update.ts
                    if not shift:  # the data from its start: not added to what is stored
                        sink.rewind(first)
                if update.ts < last:  # a file earlier than the one before it
                    reader.skip(0, "a time earlier than the file before")
                    continue
                batch.append(update)
                last = update.ts
                if self.speed == 0:
                    if len(batch) >= BATCH:
                        await self._hand_over(sink, batch)
                        batch = []
                    continue
                due = began + (update.ts - first) / 1000 / self.speed
                if due - loop.time() > TICK:
                    await self._hand_over(sink, batch[:-1])
                    batch = batch[-1:]
                    await asyncio.sleep(due - loop.time())
            self.skipped += reader.skipped.count
        await self._hand_over(sink, batch)
        return first, last

    async def _hand_over(self, sink: Sink, batch: list[Update]) -> None:
        if batch:
            sink.publish(batch)
            self.event_time = batch[-1].ts
            sink.advance(self.event_time)
            self.updates += len(batch)
        await asyncio.sleep(0)  # let the server serve between batches
