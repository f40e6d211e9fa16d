"""`tickwire cluster`: one ingest and N gateways on this machine, the gateways sharing one
port (`SO_REUSEPORT`: the kernel spreads connections over them), joined through Redis
(`--engine redis`, the default) or the ingest's own Unix socket (`--engine local`, no
Redis: the engine.sock in the data dir).

Each is a `tickwire serve` process of its own, started with the same config and options
and its role; a process that dies is started again after a second (a config error stops
everything). SIGTERM or Ctrl-C stops them all, gateways first.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import Annotated

import typer

from tickwire.cli.config_command import (
    ConfigOption,
    DataDirOption,
    EngineUrlOption,
    HostOption,
    PortOption,
    load_settings,
)
from tickwire.cli.running import fail

MAX_GATEWAYS = 64
RESTART_AFTER = 1.0
"""Seconds before a process that died is started again."""
STOP_TIMEOUT = 15.0
"""Seconds each process has to stop before it is killed."""


@dataclass
class _Process:
    role: str
    args: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restarts: int = 0
    down_since: float | None = field(default=None)

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, env=self.env)
        self.started = time.monotonic()
        self.down_since = None


def cluster(
    config: ConfigOption = None,
    gateways: Annotated[int, typer.Option(
        "--gateways", "-n", help=f"Gateway processes sharing the port (1..{MAX_GATEWAYS})")] = 2,
    host: HostOption = None,
    port: PortOption = None,
    ingest_port: Annotated[int | None, typer.Option(
        help="The ingest's port, for its /healthz and /metrics (default: --port + 1)")] = None,
    data_dir: DataDirOption = None,
    engine_url: EngineUrlOption = None,
    engine: Annotated[str, typer.Option(
        "--engine", help='How the gateways reach the ingest: "redis" or "local" (a Unix '
                         'socket, this machine only)')] = "redis",
) -> None:
    """Run one ingest and N gateways sharing a port, through Redis or a local socket.

    Example: tickwire cluster --config tickwire.toml --gateways 4 --engine local
    """
    if not 1 <= gateways <= MAX_GATEWAYS:
        fail(f"--gateways: must be 1 to {MAX_GATEWAYS}, not {gateways}", 2)
    if engine not in ("redis", "local"):
        fail(f"--engine: {engine[:32]!r} is not \"redis\" or \"local\"", 2)
    settings = load_settings(config, host, port, data_dir, engine, "all", engine_url)
    if not settings.server.port:
        fail("--port: a cluster needs a fixed port for its gateways, not 0", 2)
    own_port = ingest_port if ingest_port is not None else settings.server.port + 1
    if own_port == settings.server.port:
        fail("--ingest-port: must differ from the gateways' port", 2)
    base = [sys.executable, "-m", "tickwire", "serve", "--engine", engine]
    for flag, value in (("--config", config), ("--host", host), ("--data-dir", data_dir),
                        ("--engine-url", engine_url)):
        if value is not None:
            base += [flag, str(value)]
    env = dict(os.environ)
    processes = [_Process("ingest", [*base, "--role", "ingest", "--port", str(own_port)], env)]
    gateway_env = {**env, "TICKWIRE_SERVER_REUSE_PORT": "true"}
    processes += [_Process(f"gateway-{i + 1}", [*base, "--role", "gateway", "--port",
                                                 str(settings.server.port)], gateway_env)
                  for i in range(gateways)]
    joined = f"Redis {settings.engine.url.split('@')[-1]}" if engine == "redis" else \
        f"socket {settings.engine_socket}"
    typer.echo(f"tickwire cluster: 1 ingest on port {own_port}, {gateways} gateways on port "
               f"{settings.server.port}, {joined}", err=True)
    raise typer.Exit(_supervise(processes))


def _supervise(processes: list[_Process]) -> int:
    stopping: list[int] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for process in processes:
            process.start()
        while not stopping:
            time.sleep(0.2)
            for process in processes:
                code = _check(process)
                if code is not None:
                    _stop_all(processes)
                    return code
        _stop_all(processes)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _check(process: _Process) -> int | None:
    """Start a process that died again, after a pause; an exit status to end the cluster
    with when it could not start at all (a config error, the port taken)."""
    assert process.proc is not None
    code = process.proc.poll()
    if code is None:
        return None
    now = time.monotonic()
    if process.down_since is None:
        if code in (1, 2) and now - process.started < 5 and not process.restarts:
            typer.echo(f"tickwire cluster: {process.role} could not start (exit status "
                       f"{code}); stopping", err=True)
            return code
        typer.echo(f"tickwire cluster: {process.role} exited with status {code}; starting "
                   f"it again in {RESTART_AFTER:g} s", err=True)
        process.down_since = now
    elif now - process.down_since >= RESTART_AFTER:
        process.restarts += 1
        process.start()
    return None


def _stop_all(processes: list[_Process]) -> None:
    """Gateways first (their clients go to other machines' gateways), the ingest last."""
    for group in (processes[1:], processes[:1]):
        running = [p.proc for p in group if p.proc is not None and p.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        for proc in running:
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
