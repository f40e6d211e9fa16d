"""A real redis-server for tests: on a free port, in a folder of its own, nothing saved to
disk, stopped after. Tests that need one skip, saying why, where the binary is absent."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.ports import free_port

BINARY = "redis-server"


def _real_clock() -> dict[str, str]:
    """This environment without libfaketime: redis-server does not start under it, and a
    suite run under `faketime` tests tickwire's clock, not Redis's."""
    return {k: v for k, v in os.environ.items()
            if k != "LD_PRELOAD" and not k.startswith("FAKETIME")}


def require_redis() -> str:
    """The path of redis-server; the test skips where there is none."""
    path = shutil.which(BINARY)
    if path is None:
        pytest.skip(f"{BINARY} not found: install Debian's redis-server package "
                    "(`apt-get install redis-server`; CI does)")
    return path


def unique_prefix() -> str:
    """A key prefix of its own, so tests sharing one server never meet."""
    return f"t{uuid.uuid4().hex[:10]}"


@dataclass
class RedisServer:
    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> None:
        """Start it (again, on the same port) and wait until it answers PING."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [require_redis(), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
             "--logfile", str(self.workdir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=_real_clock())
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.workdir / "redis.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"redis-server did not start on {self.port}:\n{log}")
            time.sleep(0.05)

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


def start_redis(workdir: Path) -> RedisServer:
    server = RedisServer(workdir)
    server.start()
    return server
