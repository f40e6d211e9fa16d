"""The client commands: the SDK in a terminal (quote, kline, categories, symbols, watch,
record). Each runs one coroutine on an AsyncClient through `run_client`, which turns every
error into one line on stderr and a non-zero exit.

Nothing waits for long: every answer of the server (and the opening of a WebSocket) gets
`--timeout` seconds, and a server that is not there fails the command at once. An unknown
code is an error: the command names it and exits 1, after the output of the known codes
for `quote`, before any for `watch` and `record`.

The quote tables show each product's name, which quotes do not carry: it comes from the
symbol lists (`AsyncClient.names`), asked alongside the quotes. A name that does not come
in time leaves its cell empty; it never fails the command.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from rich.live import Live
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

from tickwire.cli.running import run_client
from tickwire.cli.terminal import (
    Board,
    bars_table,
    categories_table,
    check_export_path,
    console,
    page_caption,
    parse_time,
    quote_line,
    quotes_table,
    symbols_table,
    write_bars,
)
from tickwire.client import DEFAULT_HTTP_URL, AsyncClient, Event, Quote, Stream
from tickwire.errors import TickwireError, UnknownCode
from tickwire.models import WINDOW
from tickwire.wire import MAX_PAGE_SIZE, split_codes

DEFAULT_TIMEOUT = 5.0
"""Seconds a command waits for the server's answer unless told otherwise."""

ServerOption = Annotated[str, typer.Option(
    "--server", "-s", envvar="TICKWIRE_URL",
    help="The server's HTTP base URL (http:// may be left out).")]
WsOption = Annotated[str | None, typer.Option(
    "--ws", envvar="TICKWIRE_WS_URL", help="WebSocket URL (default: the server's /ws).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
DurationOption = Annotated[float | None, typer.Option(
    "--duration", help="Stop after this many seconds (default: until Ctrl-C).")]
TimeoutOption = Annotated[float, typer.Option(
    "--timeout", "-t", min=0.1,
    help="Seconds to wait for the server's answer (or for its WebSocket to open).")]


def _client(server: str, timeout: float, ws: str | None = None,
            on_event: Callable[[Event], None] | None = None) -> AsyncClient:
    """The SDK client of one command: `timeout` for every answer and every WebSocket
    opening, and no retries, so a server that is not there fails the command at once."""
    return AsyncClient(server, ws, timeout=timeout, connect_timeout=timeout, retries=0,
                       on_event=on_event)


def _print_json(value: Any) -> None:
    sys.stdout.buffer.write(msgspec.json.encode(value) + b"\n")
    sys.stdout.flush()


async def _names(client: AsyncClient, codes: list[str], timeout: float | None = None
                 ) -> dict[str, str]:
    """The names of `codes` if they come within `timeout` s; what the tables do without."""
    try:
        async with asyncio.timeout(timeout):  # no task of its own: cancelling this ends it
            return await client.names(codes)
    except (TimeoutError, TickwireError):
        return {}


class _Reporter:
    """Connection events as `tickwire: ...` lines on stderr (stdout carries the data), once
    the stream is up: a failure before that ends the command with a line of its own."""

    def __init__(self) -> None:
        self.armed = False

    def __call__(self, event: Event) -> None:
        if self.armed and event.kind in ("connected", "reconnecting", "dead", "server_error"):
            typer.echo(f"tickwire: {event.message}", err=True)


def quote(codes: Annotated[list[str], typer.Argument(help="Product codes.")],
          server: ServerOption = DEFAULT_HTTP_URL, as_json: JsonOption = False,
          timeout: TimeoutOption = DEFAULT_TIMEOUT) -> None:
    """The latest quote of one or more products, as a table.

    Unknown codes are named on stderr after the table of the others;
    the exit status is then 1.

    Example: tickwire quote btcusdt ethusdt --server 127.0.0.1:1008
    """
    async def quotes(client: AsyncClient) -> tuple[list[Quote], UnknownCode | None]:
        try:
            return await client.quotes(codes), None
        except UnknownCode as exc:
            return exc.found, exc

    async def work() -> None:
        names: dict[str, str] = {}
        async with _client(server, timeout) as client:
            if as_json:
                found, unknown = await quotes(client)
            else:  # the names at the same time: the slower of the two sets the pace
                naming = asyncio.ensure_future(_names(client, split_codes(codes), timeout))
                try:
                    (found, unknown), names = await asyncio.gather(quotes(client), naming)
                finally:
                    naming.cancel()
        if as_json:
            _print_json([q.raw for q in found])
        elif found:
            console().print(quotes_table(found, names))
        if unknown is not None:
            raise unknown

    run_client(work())


def kline(
    code: Annotated[str, typer.Argument(help="Product code.")],
    interval: Annotated[str, typer.Option("--interval", "-i",
                                          help="1m 5m 15m 30m 1h 1d 1M")] = "1m",
    rows: Annotated[int, typer.Option("--rows", "-n", min=1,
                                      help="How many bars (pages back past one request's "
                                           "maximum).")] = 40,
    end: Annotated[str | None, typer.Option(help="Newest open time: ms, s or 'YYYY-MM-DD "
                                            "HH:MM:SS' (service time zone).")] = None,
    start: Annotated[str | None, typer.Option(help="Oldest open time: every bar from here "
                                              "to --end, instead of --rows.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o",
                                             help="Write .csv, .json or .parquet.")] = None,
    server: ServerOption = DEFAULT_HTTP_URL, as_json: JsonOption = False,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
) -> None:
    """K-line bars, oldest first: a table, or a file with --out.

    A long history export shows a progress bar; --timeout applies to each
    page of it.

    Example: tickwire kline btcusdt --interval 1h --rows 300 --out btc-1h.csv
    """
    async def work() -> None:
        end_ms = parse_time(end) if end else None
        start_ms = parse_time(start) if start else None
        if out is not None:
            check_export_path(out)
        long_export = start_ms is not None or rows > WINDOW.get(interval, 300)
        progress = Progress(TextColumn(f"{code} {interval}"), BarColumn(),
                            TaskProgressColumn(), console=console(stderr=True),
                            transient=True, disable=not long_export)
        with progress:
            task = progress.add_task("bars", total=1.0)

            def advance(fraction: float) -> None:
                progress.update(task, completed=fraction)

            async with _client(server, timeout) as client:
                if start_ms is not None:
                    bars = await client.history(code, interval, start_ms, end_ms,
                                                progress=advance)
                else:
                    bars = await client.klines(code, interval, rows, end_ms, progress=advance)
        if out is not None:
            write_bars(bars, out)
            span = f" ({bars[0].time} .. {bars[-1].time})" if bars else ""
            typer.echo(f"wrote {len(bars)} bars{span} to {out}")
        elif as_json:
            _print_json(list(bars))
        else:
            console().print(bars_table(bars, code, interval))

    run_client(work())


def categories(server: ServerOption = DEFAULT_HTTP_URL, as_json: JsonOption = False,
               timeout: TimeoutOption = DEFAULT_TIMEOUT) -> None:
    """The product categories.

    Example: tickwire categories --json
    """
    async def work() -> None:
        async with _client(server, timeout) as client:
            found = await client.categories()
        if as_json:
            _print_json(found)
        else:
            console().print(categories_table(found))

    run_client(work())


def symbols(
    category: Annotated[str, typer.Option("--category", "-c", help="Category id.")],
    show_all: Annotated[bool, typer.Option("--all", help="Every page.")] = False,
    page: Annotated[int, typer.Option(min=1)] = 1,
    page_size: Annotated[int, typer.Option("--page-size", min=1, max=MAX_PAGE_SIZE)] = 10,
    server: ServerOption = DEFAULT_HTTP_URL, as_json: JsonOption = False,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
) -> None:
    """A category's products, a page at a time or --all.

    Example: tickwire symbols --category 4 --all
    """
    async def work() -> None:
        async with _client(server, timeout) as client:
            if show_all:
                found = await client.all_symbols(category)
                caption = f"{len(found)} symbols in category {category}"
            else:
                listing = await client.symbols(category, page, page_size)
                found, caption = listing.symbols, page_caption(listing)
        if as_json:
            _print_json(found)
        else:
            console().print(symbols_table(found, caption))

    run_client(work())


def watch(codes: Annotated[list[str], typer.Argument(help="Product codes.")],
          server: ServerOption = DEFAULT_HTTP_URL, ws: WsOption = None,
          duration: DurationOption = None,
          as_json: Annotated[bool, typer.Option(
              "--json", help="One quote body per line, as JSON.")] = False,
          timeout: TimeoutOption = DEFAULT_TIMEOUT) -> None:
    """Live quotes: a table, or a line per update through a pipe.

    On a terminal, price changes flash and reconnects show below the table;
    product names fill in once the symbol lists have given them. Piped or
    redirected (or with --json), each update is one line, and reconnects go
    to stderr.

    Example: tickwire watch btcusdt ethusdt | grep btcusdt
    """
    wanted = split_codes(codes)
    live = console().is_terminal and not as_json
    board = Board(wanted)
    report = _Reporter()

    async def work() -> None:
        loop = asyncio.get_running_loop()
        stop_at = loop.time() + duration if duration else float("inf")
        async with _client(server, timeout, ws, board.on_event if live else report) as client, \
                client.stream(wanted) as stream:
            await stream.ready()
            report.armed = True
            if live:
                naming = asyncio.ensure_future(_fill_names(board, client))
                try:
                    await _watch_table(stream, board, stop_at)
                finally:
                    naming.cancel()
            else:
                await _watch_lines(stream, wanted, as_json, stop_at)

    try:
        run_client(work(), log_warnings=False)
    except typer.Exit as exc:
        if exc.exit_code == 130:  # Ctrl-C is how a watch ends
            raise typer.Exit(0) from None
        raise


async def _fill_names(board: Board, client: AsyncClient) -> None:
    """The board's product names, in the background while it shows quotes."""
    board.names.update(await _names(client, board.codes))


async def _watch_table(stream: Stream, board: Board, stop_at: float) -> None:
    """The live table until `stop_at` (loop time) or the end of the stream."""
    loop = asyncio.get_running_loop()
    with Live(board.render(), console=console(), auto_refresh=False,
              redirect_stderr=False) as live:
        while (left := stop_at - loop.time()) > 0:
            quote = await stream.get(min(left, 0.1))
            if quote is not None:
                board.update(quote)
            elif stream.closed:
                break
            live.update(board.render(), refresh=True)


async def _watch_lines(stream: Stream, codes: list[str], as_json: bool,
                       stop_at: float) -> None:
    """Each update as a line on stdout, as it comes."""
    loop = asyncio.get_running_loop()
    width = max(map(len, codes), default=0)
    out = sys.stdout.buffer
    while (left := stop_at - loop.time()) > 0:
        quote = await stream.get(min(left, 0.5))
        if quote is None:
            if stream.closed:
                break
            continue
        out.write(quote.raw_json if as_json else quote_line(quote, width).encode())
        out.write(b"\n")
        out.flush()


def record(codes: Annotated[list[str], typer.Argument(help="Product codes.")],
           out: Annotated[Path, typer.Option("--out", "-o", help="The .jsonl file to write.")],
           server: ServerOption = DEFAULT_HTTP_URL, ws: WsOption = None,
           duration: DurationOption = None,
           count: Annotated[int | None, typer.Option(
               help="Stop after this many pushes.")] = None,
           timeout: TimeoutOption = DEFAULT_TIMEOUT) -> None:
    """Every push of CODES, one quote `body` per line as received, for replay.

    Example: tickwire record btcusdt ethusdt --out pushes.jsonl --duration 60
    """
    wanted = split_codes(codes)
    written = 0
    finished = False
    report = _Reporter()

    async def work() -> None:
        nonlocal written, finished
        loop = asyncio.get_running_loop()
        stop_at = loop.time() + duration if duration else float("inf")
        async with _client(server, timeout, ws, report) as client, \
                client.stream(wanted, maxsize=1_000_000) as stream:
            await stream.ready()
            report.armed = True
            with out.open("wb") as sink:
                while (left := stop_at - loop.time()) > 0 and \
                        (count is None or written < count):
                    quote = await stream.get(min(left, 0.5))
                    if quote is None:
                        if stream.closed:
                            break
                        continue
                    sink.write(quote.raw_json + b"\n")
                    written += 1
        finished = True

    try:
        run_client(work(), log_warnings=False)
    finally:
        if written or finished:
            typer.echo(f"tickwire: recorded {written} pushes of {len(wanted)} codes to {out}",
                       err=True)
