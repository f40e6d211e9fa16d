"""`tickwire config`: the configuration `serve` would run with, printed as TOML or JSON.

The file, the `TICKWIRE_*` variables and the flags, read as `serve` reads them (its options
and the reading are here, shared by both) and checked as `serve` checks them before it
starts; an error is one line naming the key, and exit status 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer

from tickwire.catalogue import CatalogueError
from tickwire.cli.running import fail
from tickwire.config import Config, ConfigError, load_config, shown_url, toml_document

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file")]
HostOption = Annotated[str | None, typer.Option(help="Address to listen on")]
PortOption = Annotated[int | None, typer.Option(help="Port to listen on")]
DataDirOption = Annotated[
    str | None, typer.Option("--data-dir", help="Where the store lives")]
EngineOption = Annotated[str | None, typer.Option(
    "--engine",
    help='What the ingest and the gateways share: "memory", "local" or "redis"')]
RoleOption = Annotated[str | None, typer.Option(
    "--role",
    help='What this process runs: "all", "ingest" or "gateway" (--engine local or redis)')]
EngineUrlOption = Annotated[str | None, typer.Option(
    "--engine-url", help="The Redis server of --engine redis, e.g. redis://10.0.0.5:6379/0")]

HIDDEN = "********"
"""What is printed for a set admin token."""


def load_settings(config: Path | None, host: str | None, port: int | None,
                  data_dir: str | None, engine: str | None = None, role: str | None = None,
                  engine_url: str | None = None) -> Config:
    """The file, the environment and the flags; a config error ends the command (2)."""
    try:
        return load_config(config, {"server.host": host, "server.port": port,
                                    "server.data_dir": data_dir, "engine.kind": engine,
                                    "engine.role": role, "engine.url": engine_url})
    except ConfigError as exc:
        fail(f"config error: {exc}", 2)


def show_config(
    config: ConfigOption = None,
    host: HostOption = None,
    port: PortOption = None,
    data_dir: DataDirOption = None,
    engine: EngineOption = None,
    role: RoleOption = None,
    engine_url: EngineUrlOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of TOML")] = False,
) -> None:
    """Print the configuration serve would run with (TOML or --json)."""
    settings = load_settings(config, host, port, data_dir, engine, role, engine_url)
    try:
        _check(settings)
    except (CatalogueError, ConfigError) as exc:
        fail(f"config error: {exc}", 2)
    data = printable(settings)
    if as_json:
        typer.echo(msgspec.json.format(msgspec.json.encode(data), indent=2).decode())
    else:
        typer.echo(toml_document(data), nl=False)


def printable(settings: Config) -> dict[str, Any]:
    """The configuration as plain data, the admin token hidden."""
    data: dict[str, Any] = msgspec.to_builtins(settings)
    if data["access"]["admin_token"]:
        data["access"]["admin_token"] = HIDDEN
    data["engine"]["url"] = shown_url(data["engine"]["url"])
    return data


def _check(settings: Config) -> None:
    """What `serve` checks before it starts, beyond the keys: the catalogue with the config's
    products, their trading hours, which feed drives which product, the recorded codes."""
    from tickwire.feeds.factory import claims
    from tickwire.market import Market, TimeZone
    from tickwire.server import feed_catalogue, recorded_codes

    catalogue = feed_catalogue(settings)
    Market(catalogue.products.values(), TimeZone(settings.server.timezone))
    claims(settings.feeds, catalogue, settings.data_path)
    recorded_codes(settings, catalogue)
