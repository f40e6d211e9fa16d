"""`tickwire allow list|add|remove`: the allow-list from the shell.

Against a running server's admin API (`--server URL --token T`), or straight against the
store in the data dir (a running server picks the change up within a second).
"""

from __future__ import annotations

import time
import urllib.parse
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from rich.table import Table

from tickwire.cli.running import fail, run_client
from tickwire.cli.terminal import console
from tickwire.client import DEFAULT_HTTP_URL
from tickwire.client.events import Emitter
from tickwire.client.http import HttpTransport, unwrap
from tickwire.config import ConfigError, load_config

allow_app = typer.Typer(no_args_is_help=True, help="Show or change the IP allow-list.")

ADMIN_TIMEOUT = 10.0
"""Seconds an admin API call may take before it fails."""

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Server config file")]
DataDirOpt = Annotated[str | None, typer.Option("--data-dir", help="The server's data dir")]
ServerOpt = Annotated[str | None, typer.Option(
    "--server", help=f"A running server's URL, e.g. {DEFAULT_HTTP_URL} (uses the admin API)")]
TokenOpt = Annotated[str | None, typer.Option(
    "--token", envvar="TICKWIRE_ACCESS_ADMIN_TOKEN", help="The admin token")]


class AllowError(Exception):
    """What went wrong, in one line for the user."""


class _Entry(msgspec.Struct):
    """One line of the allow-list, as the admin API lists it."""

    cidr: str
    source: str
    note: str = ""
    added_ms: int | None = None


class _Listing(msgspec.Struct):
    entries: list[_Entry] = msgspec.field(name="list", default_factory=list)


def _admin(server: str, token: str | None, method: str, path: str,
           body: dict[str, str] | None = None) -> bytes:
    """`data` of the admin API's answer; a failure ends the command with one line."""
    if not token:
        raise AllowError("--token (or TICKWIRE_ACCESS_ADMIN_TOKEN) is needed with --server")

    async def call() -> bytes:
        transport = HttpTransport(server, timeout=ADMIN_TIMEOUT, retries=0,
                                  emit=Emitter(None),
                                  headers={"Authorization": f"Bearer {token}"})
        try:
            return bytes(unwrap(await transport.send(method, path, body)))
        finally:
            await transport.close()

    return run_client(call())


def _local(config: Path | None, data_dir: str | None) -> tuple[Any, list[str]]:
    from tickwire.engine.sqlite import SqliteStore

    try:
        settings = load_config(config, {"server.data_dir": data_dir})
    except ConfigError as exc:
        raise AllowError(f"config error: {exc}") from None
    if settings.engine.role == "gateway":
        # the allow-list is the ingest's: a gateway's data dir has none
        raise AllowError("on a gateway use --server URL --token T (or the ingest's --data-dir)")
    path = settings.database_path
    if not path.parent.is_dir():
        raise AllowError(f"no data dir at {path.parent}")
    return SqliteStore(path), settings.access.allow


def _show(entries: list[_Entry]) -> None:
    table = Table("cidr", "source", "note", "added")
    for entry in entries:
        added = entry.added_ms or 0
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(added / 1000)) if added else ""
        table.add_row(entry.cidr, entry.source, entry.note, when)
    console().print(table)


def _normal(cidr: str) -> str:
    from tickwire.gateway.access import parse_network

    try:
        return str(parse_network(cidr))
    except ValueError:
        raise AllowError(f"{cidr!r} is not an IP address or CIDR range") from None


@allow_app.command("list")
def list_entries(config: ConfigOpt = None, data_dir: DataDirOpt = None, server: ServerOpt = None,
                 token: TokenOpt = None) -> None:
    """List the allowed addresses and ranges.

    Example: tickwire allow list --server http://127.0.0.1:1008 --token T
    """
    try:
        if server:
            data = _admin(server, token, "GET", "admin/allow")
            _show(msgspec.json.decode(data, type=_Listing).entries)
            return
        store, configured = _local(config, data_dir)
        try:
            rows = [_Entry(_normal(c), "config", "from the config file") for c in configured]
            rows += [_Entry(e.cidr, "admin", e.note, e.added_ms)
                     for e in store.allow_list().entries]
        finally:
            store.close()
        _show(rows)
    except AllowError as exc:
        fail(str(exc), 1)


@allow_app.command("add")
def add_entry(cidr: str, note: Annotated[str, typer.Option(help="Why")] = "",
              config: ConfigOpt = None, data_dir: DataDirOpt = None, server: ServerOpt = None,
              token: TokenOpt = None) -> None:
    """Allow an address or CIDR range.

    Example: tickwire allow add 203.0.113.0/24 --note office
    """
    try:
        normal = _normal(cidr)
        if server:
            _admin(server, token, "POST", "admin/allow", {"cidr": normal, "note": note})
        else:
            store, _ = _local(config, data_dir)
            try:
                store.allow_add(normal, note)
            finally:
                store.close()
        typer.echo(f"allowed {normal}")
    except AllowError as exc:
        fail(str(exc), 1)


@allow_app.command("remove")
def remove_entry(cidr: str, config: ConfigOpt = None, data_dir: DataDirOpt = None,
                 server: ServerOpt = None, token: TokenOpt = None) -> None:
    """Stop allowing an address or range added at run time.

    Example: tickwire allow remove 203.0.113.0/24
    """
    try:
        normal = _normal(cidr)
        if server:
            _admin(server, token, "DELETE", "admin/allow/" + urllib.parse.quote(normal, safe=""))
        else:
            store, _ = _local(config, data_dir)
            try:
                if not store.allow_remove(normal)[0]:
                    raise AllowError(f"{normal} is not on the run-time allow-list")
            finally:
                store.close()
        typer.echo(f"removed {normal}")
    except AllowError as exc:
        fail(str(exc), 1)
