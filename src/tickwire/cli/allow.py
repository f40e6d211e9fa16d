"""`tickwire allow list|add|remove`: the allow-list from the shell.

Against a running server's admin API (`--server URL --token T`), or straight against the
store in the data dir (a running server picks the change up within two seconds).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tickwire.client.aio import DEFAULT_HTTP_URL
from tickwire.config import ConfigError, load_config

allow_app = typer.Typer(no_args_is_help=True, help="Show or change the IP allow-list.")

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Server config file")]
DataDirOpt = Annotated[str | None, typer.Option("--data-dir", help="The server's data dir")]
ServerOpt = Annotated[str | None, typer.Option(
    "--server", help=f"A running server's URL, e.g. {DEFAULT_HTTP_URL} (uses the admin API)")]
TokenOpt = Annotated[str | None, typer.Option(
    "--token", envvar="TICKWIRE_ACCESS_ADMIN_TOKEN", help="The admin token")]


class AllowError(Exception):
    """What went wrong, in one line for the user."""


def _admin_call(server: str, token: str | None, method: str, path: str,
                body: dict[str, str] | None = None) -> Any:
    if not token:
        raise AllowError("--token (or TICKWIRE_ACCESS_ADMIN_TOKEN) is needed with --server")
    request = urllib.request.Request(
        server.rstrip("/") + path, method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return json.loads(resp.read())["data"]
    except urllib.error.HTTPError as exc:
        try:
            msg = json.loads(exc.read())["msg"]
        except (ValueError, KeyError):
            msg = exc.reason
        raise AllowError(f"server answered {exc.code}: {msg}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise AllowError(f"cannot reach {server}: {getattr(exc, 'reason', exc)}") from None


def _local(config: Path | None, data_dir: str | None) -> tuple[Any, list[str]]:
    from tickwire.engine.sqlite import SqliteStore

    try:
        settings = load_config(config, {"server.data_dir": data_dir})
    except ConfigError as exc:
        raise AllowError(f"config error: {exc}") from None
    path = Path(settings.server.data_dir) / "tickwire.sqlite3"
    if not path.parent.is_dir():
        raise AllowError(f"no data dir at {path.parent}")
    return SqliteStore(path), settings.access.allow


def _show(entries: list[dict[str, Any]]) -> None:
    table = Table("cidr", "source", "note", "added")
    for entry in entries:
        added = entry.get("added_ms") or 0
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(added / 1000)) if added else ""
        table.add_row(entry["cidr"], entry["source"], entry["note"], when)
    Console().print(table)


def _fail(exc: AllowError) -> None:
    typer.echo(f"tickwire: {exc}", err=True)
    raise typer.Exit(1)


def _normal(cidr: str) -> str:
    from tickwire.gateway.guards import parse_network

    try:
        return str(parse_network(cidr))
    except ValueError:
        raise AllowError(f"{cidr!r} is not an IP address or CIDR range") from None


@allow_app.command("list")
def list_entries(config: ConfigOpt = None, data_dir: DataDirOpt = None, server: ServerOpt = None,
                 token: TokenOpt = None) -> None:
    """List the allowed addresses and ranges."""
    try:
        if server:
            _show(_admin_call(server, token, "GET", "/admin/allow")["list"])
            return
        store, configured = _local(config, data_dir)
        try:
            rows = [{"cidr": _normal(c), "source": "config", "note": "from the config file"}
                    for c in configured]
            rows += [{"cidr": c, "source": "admin", "note": n, "added_ms": ms}
                     for c, n, ms in store.allow_entries()]
        finally:
            store.close()
        _show(rows)
    except AllowError as exc:
        _fail(exc)


@allow_app.command("add")
def add_entry(cidr: str, note: Annotated[str, typer.Option(help="Why")] = "",
              config: ConfigOpt = None, data_dir: DataDirOpt = None, server: ServerOpt = None,
              token: TokenOpt = None) -> None:
    """Allow an address or CIDR range."""
    try:
        normal = _normal(cidr)
        if server:
            _admin_call(server, token, "POST", "/admin/allow", {"cidr": normal, "note": note})
        else:
            store, _ = _local(config, data_dir)
            try:
                store.add_allow(normal, note)
            finally:
                store.close()
        typer.echo(f"allowed {normal}")
    except AllowError as exc:
        _fail(exc)


@allow_app.command("remove")
def remove_entry(cidr: str, config: ConfigOpt = None, data_dir: DataDirOpt = None,
                 server: ServerOpt = None, token: TokenOpt = None) -> None:
    """Stop allowing an address or range added at run time."""
    try:
        normal = _normal(cidr)
        if server:
            _admin_call(server, token, "DELETE",
                        "/admin/allow/" + urllib.parse.quote(normal, safe=""))
        else:
            store, _ = _local(config, data_dir)
            try:
                if not store.remove_allow(normal):
                    raise AllowError(f"{normal} is not on the run-time allow-list")
            finally:
                store.close()
        typer.echo(f"removed {normal}")
    except AllowError as exc:
        _fail(exc)
