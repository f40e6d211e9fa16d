"""`tickwire status`: a running server's `/healthz` as a line of its state and a table of
its feeds (`--json`: the answer as it came).

A server still starting answers 503 with the same body: that is shown like any other. One
that cannot be reached, or does not answer within `--timeout`, ends the command with one
line on stderr and exit status 1.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from datetime import datetime

import msgspec
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from tickwire.cli.client_commands import DEFAULT_TIMEOUT, JsonOption, ServerOption, TimeoutOption
from tickwire.cli.running import run_client
from tickwire.cli.terminal import console
from tickwire.client import DEFAULT_HTTP_URL
from tickwire.client.events import Emitter
from tickwire.client.http import HttpTransport
from tickwire.errors import ServerError


class FeedHealth(msgspec.Struct):
    """What the table shows of a feed's `/healthz` entry (the rest is in `--json`)."""

    name: str = ""
    kind: str = ""
    state: str = ""
    since: str = ""
    in_state_s: float | None = None
    updates_per_s: float | None = None
    error: str | None = None
    last_error: str | None = None


class Health(msgspec.Struct):
    status: str
    feeds: list[FeedHealth] = []
    products: int | None = None
    connections: int | None = None
    store: dict[str, object] = {}


_health = msgspec.json.Decoder(Health)

STATE_STYLES = {"ok": "green", "live": "green", "finished": "blue", "degraded": "yellow",
                "starting": "yellow", "connecting": "yellow", "down": "bold red"}
COLUMNS = ("FEED", "KIND", "STATE", "SINCE", "UPD/S", "ERROR")
_FIXED = ("KIND", "STATE", "SINCE", "UPD/S")
"""Columns shown whole; FEED and ERROR share what is left of the width (ERROR first)."""
_GAP = 2
_SHORTEST = {"FEED": 8, "ERROR": 24}
"""FEED is cut no shorter than this while ERROR gets at least its share."""


def age(seconds: float) -> str:
    """`42s`, `12m`, `3h05m`, `4d03h`."""
    s = max(int(seconds), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02}m"
    return f"{s // 86400}d{s % 86400 // 3600:02}h"


def since_cell(since: str, seconds: float | None) -> str:
    """When a feed entered its state, in the server's time zone: its time of day within a
    day (its date beyond), with how long ago: `13:05:09 (3m)`, `12-01 (4d03h)`."""
    try:
        moment: datetime | None = datetime.fromisoformat(since)
    except ValueError:
        moment = None
    ago = f"({age(seconds)})" if seconds is not None else ""
    if moment is None:
        return ago or "-"
    when = moment.strftime("%H:%M:%S" if seconds is not None and seconds < 86400 else "%m-%d")
    return f"{when} {ago}".strip()


def rate_cell(per_second: float | None) -> str:
    if per_second is None:
        return "-"
    return f"{per_second:.1f}" if per_second < 100 else f"{per_second:.0f}"


Row = dict[str, Text]


def feed_row(feed: FeedHealth) -> Row:
    if feed.error:
        error = Text(feed.error, style="red")
    elif feed.last_error:
        error = Text(f"last: {feed.last_error}", style="dim")
    else:
        error = Text("")
    return {"FEED": Text(feed.name), "KIND": Text(feed.kind),
            "STATE": Text(feed.state, style=STATE_STYLES.get(feed.state, "")),
            "SINCE": Text(since_cell(feed.since, feed.in_state_s)),
            "UPD/S": Text(rate_cell(feed.updates_per_s)), "ERROR": error}


class FeedTable:
    """The feeds, one row each, as wide as the width it is printed at: every column but FEED
    and ERROR whole, a long name or error cut short with an ellipsis."""

    def __init__(self, feeds: Iterable[FeedHealth]) -> None:
        self.rows = [feed_row(feed) for feed in feeds]

    def widths(self, width: int) -> dict[str, int]:
        natural = {name: max([cell_len(name), *(row[name].cell_len for row in self.rows)])
                   for name in COLUMNS}
        room = width - _GAP * (len(COLUMNS) - 1) - sum(natural[name] for name in _FIXED)
        error = min(natural["ERROR"], _SHORTEST["ERROR"])
        feed = min(natural["FEED"], max(_SHORTEST["FEED"], room - error))
        return {**natural, "FEED": feed, "ERROR": max(room - feed, 1)}

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        widths = self.widths(options.max_width)
        table = Table(box=None, pad_edge=False, padding=(0, _GAP // 2), header_style="bold")
        for name in COLUMNS:
            table.add_column(name, justify="right" if name == "UPD/S" else "left",
                             no_wrap=True, overflow="ellipsis", max_width=widths[name])
        for row in self.rows:
            table.add_row(*(row[name] for name in COLUMNS))
        for line in console.render_lines(table, options, pad=False):
            yield from _rstripped(line)
            yield Segment.line()


def _rstripped(line: list[Segment]) -> list[Segment]:
    """A rendered line without the blanks that pad its last cells (kind to a pipe)."""
    while line and not line[-1].control and not line[-1].text.rstrip():
        line = line[:-1]
    if line and not line[-1].control:
        last = line[-1]
        line = [*line[:-1], Segment(last.text.rstrip(), last.style)]
    return line


def server_line(url: str, health: Health) -> Text:
    """`http://host:port: ok, 11 products, 2 connections`, the store named when failing."""
    line = Text(f"{url}: ")
    line.append(health.status, style=STATE_STYLES.get(health.status, "bold red"))
    for count, what in ((health.products, "products"), (health.connections, "connections")):
        if count is not None:
            line.append(f", {count} {what}")
    if health.store.get("state") == "failing":
        line.append(f"; store failing: {health.store.get('error', '')}", style="red")
    return line


async def _fetch(server: str, timeout: float) -> tuple[str, bytes]:
    """The server's URL and its `/healthz` body (a 503 while it starts included)."""
    transport = HttpTransport(server, timeout=timeout, retries=0, emit=Emitter(None))
    try:
        _, body = await transport.request("GET", "healthz", ok=(200, 503))
    finally:
        await transport.close()
    return transport.base_url, body


def status(server: ServerOption = DEFAULT_HTTP_URL, as_json: JsonOption = False,
           timeout: TimeoutOption = DEFAULT_TIMEOUT) -> None:
    """A running server's state and each feed's: live, connecting, down (with why) or
    finished, since when, updates per second.

    Reads the server's /healthz; --json prints it as it came. A server
    still starting is shown as such; one that cannot be reached within
    --timeout is an error (exit status 1).

    Example: tickwire status --server 127.0.0.1:1008
    """
    async def work() -> tuple[str, bytes, Health]:
        url, body = await _fetch(server, timeout)
        try:
            return url, body, _health.decode(body)
        except msgspec.DecodeError as exc:
            raise ServerError(f"{url}/healthz: not a tickwire health answer ({exc})",
                              502) from None

    url, body, health = run_client(work())
    if as_json:
        sys.stdout.buffer.write(body.rstrip(b"\n") + b"\n")
        sys.stdout.flush()
        return
    out = console()
    out.print(server_line(url, health))
    if health.feeds:
        out.print(FeedTable(health.feeds))
    else:
        out.print("no feeds")
