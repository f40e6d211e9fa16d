"""What the CLI shows and writes: rich tables, the live board, exports. It is part of the CLI,
not of the SDK, so the SDK never needs rich."""

from __future__ import annotations

import csv
import os
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from tickwire.client.events import Event
from tickwire.client.models import Bars, Category, Quote, Symbol, SymbolPage

SERVICE_TZ = "Asia/Shanghai"
FLASH_SECONDS = 0.6
_WIDE = 200


def console(stderr: bool = False) -> Console:
    """A console; when writing to a pipe or file, wide enough that tables are not squeezed."""
    stream = sys.stderr if stderr else sys.stdout
    if not stream.isatty() and "COLUMNS" not in os.environ:
        return Console(stderr=stderr, width=_WIDE)
    return Console(stderr=stderr)


def num(value: float) -> str:
    """A wire number as the server wrote it: `4603.0` -> `4603`, `1.0895` stays."""
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _signed(value: float) -> str:
    return ("+" if value > 0 else "") + num(value)


def signed(value: float, suffix: str = "") -> Text:
    text = _signed(value) + suffix
    return Text(text, style="green" if value > 0 else "red" if value < 0 else "")


def parse_time(text: str, tz: str = SERVICE_TZ) -> int:
    """Unix ms from `1700000000000` (ms), `1700000000` (s), or a date/time such as
    `2024-05-01`, `2024-05-01 09:30[:00]` or ISO with an offset; without an offset the
    time is read in `tz`, the service time zone the server's own time strings use."""
    stripped = text.strip()
    if stripped.isdigit():
        number = int(stripped)
        return number if number >= 10**11 else number * 1000
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise ValueError(f"not a time: {text!r} (use ms, seconds or YYYY-MM-DD[ HH:MM:SS])"
                         ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(tz))
    return int(moment.timestamp() * 1000)


# tables -----------------------------------------------------------------------------------

QUOTE_COLUMNS = ("Code", "Name", "Price", "Change", "Change %", "Bid", "Ask", "High", "Low",
                 "Volume", "Time")
LEFT_OUT_WHEN_NARROW = ("High", "Low", "Bid", "Ask", "Volume", "Time", "Change %", "Change")
"""Quote columns left out, in this order, until a table fits the width: 80 columns keep
Code, Name, Price and Change at least. Code, Name and Price are never left out; a Name too
wide for what is left is cut short with an ellipsis instead."""
_LEFT_ALIGNED = ("Code", "Name", "Time")

Cells = dict[str, Text | str]
"""A quote table's row: the cell of each column."""


class QuoteTable:
    """Quotes, one row each, with as many columns as fit the width it is printed at: a
    narrow terminal loses High, Low, Bid, Ask first (`LEFT_OUT_WHEN_NARROW`), rather than
    getting every cell cut."""

    def __init__(self, rows: Iterable[Cells]) -> None:
        self.rows = list(rows)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        unbounded = options.update(width=10_000)
        columns = list(QUOTE_COLUMNS)
        left_out = iter(LEFT_OUT_WHEN_NARROW)
        while (excess := Measurement.get(console, unbounded, self._table(columns)).maximum
               - options.max_width) > 0 and (name := next(left_out, None)) is not None:
            columns.remove(name)
        if excess <= 0:
            yield self._table(columns)
            return
        name_width = max([cell_len("Name"), *(cell_len(str(c["Name"])) for c in self.rows)])
        yield self._table(columns, name_width=max(1, name_width - excess))

    def _table(self, columns: list[str], name_width: int | None = None) -> Table:
        table = Table()
        for name in columns:
            table.add_column(name, justify="left" if name in _LEFT_ALIGNED else "right",
                             no_wrap=True, overflow="ellipsis",
                             max_width=name_width if name == "Name" else None)
        for cells in self.rows:
            table.add_row(*(cells[name] for name in columns))
        return table


def quote_cells(q: Quote, name: str = "") -> Cells:
    """A quote's row; `name` is the product's name, which quotes do not carry."""
    return {"Code": q.code, "Name": name, "Price": num(q.price), "Change": signed(q.change),
            "Change %": signed(q.change_pct, "%"), "Bid": num(q.bid) if q.bid else "-",
            "Ask": num(q.ask) if q.ask else "-", "High": num(q.high), "Low": num(q.low),
            "Volume": num(q.volume), "Time": q.time}


def quotes_table(quotes: Iterable[Quote], names: Mapping[str, str] | None = None
                 ) -> QuoteTable:
    """The quote table; a code missing from `names` gets an empty Name."""
    known = names or {}
    return QuoteTable(quote_cells(q, known.get(q.code, "")) for q in quotes)


def quote_line(q: Quote, code_width: int = 0) -> str:
    """One quote as a line of plain text, for a pipe: time, code, price, change, change %."""
    return " ".join((q.time, q.code.ljust(code_width), num(q.price), _signed(q.change),
                     _signed(q.change_pct) + "%"))


def bars_table(bars: Bars, code: str, interval: str) -> Table:
    table = Table(title=f"{code} {interval}: {len(bars)} bars, oldest first",
                  title_justify="left")
    for name in ("Time", "Open", "High", "Low", "Close", "Volume"):
        table.add_column(name, justify="left" if name == "Time" else "right", no_wrap=True)
    for b in bars:
        table.add_row(b.time, num(b.open), num(b.high), num(b.low), num(b.close),
                      num(b.volume))
    return table


def categories_table(categories: list[Category]) -> Table:
    table = Table()
    table.add_column("Id", justify="right")
    table.add_column("Name")
    for c in categories:
        table.add_row(c.id, c.name)
    return table


def symbols_table(symbols: list[Symbol], caption: str) -> Group:
    table = Table()
    table.add_column("Code", no_wrap=True)
    table.add_column("Name")
    for s in symbols:
        table.add_row(s.code, s.name)
    return Group(table, Text(caption))


def page_caption(page: SymbolPage) -> str:
    pages = max(1, -(-page.total // max(page.page_size, 1)))
    return f"page {page.page} of {pages}, {page.total} symbols in all"


# exports ----------------------------------------------------------------------------------

BAR_FIELDS = ("open_ms", "time", "open", "high", "low", "close", "volume")
EXPORT_SUFFIXES = (".csv", ".json", ".parquet")


def check_export_path(path: Path) -> None:
    if path.suffix.lower() not in EXPORT_SUFFIXES:
        raise ValueError(f"--out {path}: the name must end in .csv, .json or .parquet")
    if path.suffix.lower() == ".parquet":
        try:
            import pandas  # type: ignore[import-untyped, import-not-found, unused-ignore]  # noqa: F401
            import pyarrow  # type: ignore[import-untyped, import-not-found, unused-ignore]  # noqa: F401
        except ImportError:
            raise ValueError("--out *.parquet needs pandas and pyarrow: "
                             "pip install 'tickwire[pandas]'") from None


def write_bars(bars: Bars, path: Path) -> None:
    """Bars, oldest first, to .csv (a header row), .json (objects) or .parquet."""
    suffix = path.suffix.lower()
    rows = [(b.open_ms, b.time, b.open, b.high, b.low, b.close, b.volume) for b in bars]
    if suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(BAR_FIELDS)
            writer.writerows(rows)
    elif suffix == ".json":
        path.write_bytes(msgspec.json.encode([dict(zip(BAR_FIELDS, r, strict=True))
                                              for r in rows]))
    else:
        frame = bars.to_pandas()
        frame.insert(1, "bar_time", [b.time for b in bars])
        frame.to_parquet(path)


# the live board ---------------------------------------------------------------------------

@dataclass
class _Row:
    quote: Quote
    flash_until: float = 0.0
    flash_up: bool = True


@dataclass
class Board:
    """The `watch` table: one row per code in the order asked, a price change flashes the
    row's price green (up) or red (down) for a moment, and a status line below it."""

    codes: list[str]
    rows: dict[str, _Row] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    """The product names known so far (they may come after the first quotes)."""
    status: str = "connecting..."
    status_style: str = "yellow"
    updates: int = 0

    def update(self, quote: Quote, now: float | None = None) -> None:
        self.updates += 1
        row = self.rows.get(quote.code)
        if row is None:
            self.rows[quote.code] = _Row(quote)
            return
        if quote.price != row.quote.price:
            row.flash_until = (now or time.monotonic()) + FLASH_SECONDS
            row.flash_up = quote.price > row.quote.price
        row.quote = quote

    def on_event(self, event: Event) -> None:
        if event.kind == "connected":
            self.status, self.status_style = "connected", "green"
        elif event.kind == "connecting" and event.attempt:
            self.status = f"{event.message} (attempt {event.attempt})..."
            self.status_style = "yellow"
        elif event.kind in ("reconnecting", "dead", "disconnected"):
            self.status, self.status_style = event.message, "yellow"
        elif event.kind in ("failed", "server_error"):
            self.status, self.status_style = event.message, "red"

    def render(self, now: float | None = None) -> Group:
        moment = now or time.monotonic()
        rows: list[Cells] = []
        for code in self.codes:
            row = self.rows.get(code)
            name = self.names.get(code, "")
            if row is None:
                rows.append({**dict.fromkeys(QUOTE_COLUMNS, "-"), "Code": code,
                             "Name": name, "Time": "waiting"})
                continue
            cells = quote_cells(row.quote, name)
            if row.flash_until > moment:
                style = "bold white on dark_green" if row.flash_up else "bold white on red3"
                cells["Price"] = Text(str(cells["Price"]), style=style)
            rows.append(cells)
        status = Text(f"{self.status}  ·  {self.updates} updates", style=self.status_style)
        return Group(QuoteTable(rows), status)
