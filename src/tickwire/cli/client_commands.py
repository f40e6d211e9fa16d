"""The client commands: the SDK in a terminal (quote, kline, categories, symbols, watch,
record). Each runs one coroutine on an AsyncClient through `run_client`, which turns every
error into one line on stderr and a non-zero exit."""

from __future__ import annotations

import asyncio
import sys
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
    quotes_table,
    symbols_table,
    write_bars,
)
from tickwire.client import DEFAULT_HTTP_URL, AsyncClient, Event
from tickwire.models import WINDOW
from tickwire.wire import MAX_PAGE_SIZE, split_codes

ServerOption = Annotated[str, typer.Option(
    "--server", "-s", envvar="TICKWIRE_URL", help="The server's HTTP base URL.")]
WsOption = Annotated[str | None, typer.Option(
    "--ws", envvar="TICKWIRE_WS_URL", help="WebSocket URL (default: the server's /ws).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
DurationOption = Annotated[float | None, typer.Option(
    "--duration", help="Stop after this many seconds (default: until Ctrl-C).")]


def _print_json(value: Any) -> None:
    sys.stdout.buffer.write(msgspec.json.encode(value) + b"\n")
    sys.stdout.flush()


def quote(codes: Annotated[list[str], typer.Argument(help="Product codes.")],
          server: ServerOption = DEFAULT_HTTP_URL, as_json: JsonOption = False) -> None:
    """The latest quote of one or more products, as a table."""
    async def work() -> None:
        async with AsyncClient(server) as client:
            found = await client.quotes(codes)
        if as_json:
            _print_json([q.raw for q in found])
        else:
            console().print(quotes_table(found))
        missing = [c for c in codes if c not in {q.code for q in found}]
        if missing:
            typer.echo(f"tickwire: no quote for {', '.join(missing)}", err=True)

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
) -> None:
    """K-line bars, oldest first: a table, or a file with --out.

    A long history export shows a progress bar.
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

            async with AsyncClient(server) as client:
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


def categories(server: ServerOption = DEFAULT_HTTP_URL, as_json: JsonOption = False) -> None:
    """The product categories."""
    async def work() -> None:
        async with AsyncClient(server) as client:
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
) -> None:
    """A category's products, a page at a time or --all."""
    async def work() -> None:
        async with AsyncClient(server) as client:
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
          duration: DurationOption = None) -> None:
    """A live table of quotes: price changes flash, reconnects show below it."""
    wanted = split_codes(codes)
    board = Board(wanted)

    async def work() -> None:
        loop = asyncio.get_running_loop()
        stop_at = loop.time() + duration if duration else float("inf")
        out = console()
        async with AsyncClient(server, ws, on_event=board.on_event) as client:
            with Live(board.render(), console=out, auto_refresh=False,
                      redirect_stderr=False) as live:
                async with client.stream(wanted) as stream:
                    while (left := stop_at - loop.time()) > 0:
                        quote = await stream.get(min(left, 0.1))
                        if quote is not None:
                            board.update(quote)
                        elif stream.closed:
                            break
                        live.update(board.render(), refresh=True)
            if not out.is_terminal:
                out.print()

    try:
        run_client(work(), log_warnings=False)
    except typer.Exit as exc:
        if exc.exit_code == 130:  # Ctrl-C is how a watch ends
            raise typer.Exit(0) from None
        raise


def record(codes: Annotated[list[str], typer.Argument(help="Product codes.")],
           out: Annotated[Path, typer.Option("--out", "-o", help="The .jsonl file to write.")],
           server: ServerOption = DEFAULT_HTTP_URL, ws: WsOption = None,
           duration: DurationOption = None,
           count: Annotated[int | None, typer.Option(
               help="Stop after this many pushes.")] = None) -> None:
    """Every push of CODES, one quote `body` per line as received, for replay."""
    wanted = split_codes(codes)
    written = 0

    def report(event: Event) -> None:
        if event.kind in ("connected", "reconnecting", "dead", "server_error"):
            typer.echo(f"tickwire: {event.message}", err=True)

    async def work() -> None:
        nonlocal written
        loop = asyncio.get_running_loop()
        stop_at = loop.time() + duration if duration else float("inf")
        with out.open("wb") as sink:
            async with AsyncClient(server, ws, on_event=report) as client, \
                    client.stream(wanted, maxsize=1_000_000) as stream:
                while (left := stop_at - loop.time()) > 0 and (count is None or written < count):
                    quote = await stream.get(min(left, 0.5))
                    if quote is None:
                        if stream.closed:
                            break
                        continue
                    sink.write(quote.raw_json + b"\n")
                    written += 1

    try:
        run_client(work(), log_warnings=False)
    finally:
        typer.echo(f"tickwire: recorded {written} pushes of {len(wanted)} codes to {out}",
                   err=True)
