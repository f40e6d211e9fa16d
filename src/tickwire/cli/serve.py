"""`tickwire serve`: the server. Its imports wait until it runs, so the client commands
never load the server."""

from __future__ import annotations

from tickwire.catalogue import CatalogueError
from tickwire.cli.config_command import (
    ConfigOption,
    DataDirOption,
    EngineOption,
    EngineUrlOption,
    HostOption,
    PortOption,
    RoleOption,
    load_settings,
)
from tickwire.cli.running import fail, run
from tickwire.config import ConfigError


def serve(
    config: ConfigOption = None,
    host: HostOption = None,
    port: PortOption = None,
    data_dir: DataDirOption = None,
    engine: EngineOption = None,
    role: RoleOption = None,
    engine_url: EngineUrlOption = None,
) -> None:
    """Run the server (simulated markets and SQLite by default), or one role of it.

    Example: tickwire serve --config tickwire.toml --engine redis --role gateway
    """
    from tickwire.logs import setup_logging
    from tickwire.server import serve as run_server

    settings = load_settings(config, host, port, data_dir, engine, role, engine_url)
    setup_logging(settings.server.log_format, settings.server.log_level,
                  settings.server.timezone)
    try:
        run(run_server(settings))
    except (CatalogueError, ConfigError) as exc:  # a catalogue or feeds that cannot be used
        fail(f"config error: {exc}", 2)
    except OSError as exc:
        fail(str(exc), 1)
    except KeyboardInterrupt:
        pass
