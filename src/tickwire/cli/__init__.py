"""The `tickwire` command: `serve`, `cluster`, `config`, the client commands, `status` and
`allow`.

`main` is the console script's entry point; `app` is the typer application.
"""

from __future__ import annotations

import sys
from importlib import metadata
from typing import Annotated

import typer

from tickwire.cli.allow import allow_app
from tickwire.cli.client_commands import categories, kline, quote, record, symbols, watch
from tickwire.cli.cluster import cluster
from tickwire.cli.config_command import show_config
from tickwire.cli.serve import serve
from tickwire.cli.status import status

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="tickwire: a self-hosted real-time market-data server and client.")
app.command()(serve)
app.command()(cluster)
app.command("config")(show_config)
for _command in (quote, kline, categories, symbols, watch, record, status):
    app.command()(_command)
app.add_typer(allow_app, name="allow")


def version() -> str:
    """The installed package's version (the source tree's when it is not installed)."""
    try:
        return metadata.version("tickwire")
    except metadata.PackageNotFoundError:
        from tickwire import __version__

        return __version__


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"tickwire {version()}")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_print_version,
        help="Print the version and exit.")] = False,
) -> None:
    """tickwire: a self-hosted real-time market-data server and client."""


def main() -> None:
    sys.exit(app())


__all__ = ["app", "main", "version"]
