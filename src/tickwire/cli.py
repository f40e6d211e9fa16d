"""The `tickwire` command."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from tickwire.catalogue import CatalogueError
from tickwire.config import ConfigError, load_config

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="tickwire: a self-hosted real-time market-data server and client.")


@app.callback()
def _group() -> None:
    """tickwire: a self-hosted real-time market-data server and client."""


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"tickwire: {message}", err=True)
    raise typer.Exit(code)


def _run(coro: Any) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


@app.command()
def serve(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file")] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on")] = None,
    data_dir: Annotated[
        str | None, typer.Option("--data-dir", help="Where the store lives")
    ] = None,
) -> None:
    """Run the server (simulated markets and SQLite by default)."""
    from tickwire.gateway.app import serve as run_server
    from tickwire.logs import setup_logging

    try:
        settings = load_config(config, {"server.host": host, "server.port": port,
                                        "server.data_dir": data_dir})
    except ConfigError as exc:
        _fail(f"config error: {exc}", 2)
    setup_logging(settings.server.log_format, settings.server.log_level)
    try:
        _run(run_server(settings))
    except CatalogueError as exc:
        _fail(f"config error: {exc}", 2)
    except OSError as exc:
        _fail(str(exc), 1)
    except KeyboardInterrupt:
        pass


def _add_allow_commands() -> None:
    from tickwire.allow_cli import allow_app

    app.add_typer(allow_app, name="allow")


_add_allow_commands()


def main() -> None:
    sys.exit(app())
