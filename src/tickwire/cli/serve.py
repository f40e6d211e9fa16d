"""`tickwire serve`: the server. Its imports wait until it runs, so the client commands
never load the server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tickwire.catalogue import CatalogueError
from tickwire.cli.running import fail, run
from tickwire.config import ConfigError, load_config


def serve(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file")] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on")] = None,
    data_dir: Annotated[
        str | None, typer.Option("--data-dir", help="Where the store lives")
    ] = None,
) -> None:
    """Run the server (simulated markets and SQLite by default).

    Example: tickwire serve --config tickwire.toml
    """
    from tickwire.logs import setup_logging
    from tickwire.server import serve as run_server

    try:
        settings = load_config(config, {"server.host": host, "server.port": port,
                                        "server.data_dir": data_dir})
    except ConfigError as exc:
        fail(f"config error: {exc}", 2)
    setup_logging(settings.server.log_format, settings.server.log_level)
    try:
        run(run_server(settings))
    except (CatalogueError, ConfigError) as exc:  # a catalogue or feeds that cannot be used
        fail(f"config error: {exc}", 2)
    except OSError as exc:
        fail(str(exc), 1)
    except KeyboardInterrupt:
        pass
