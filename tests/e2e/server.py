"""Starting a real tickwire server process on a free port, for end-to-end tests."""

from __future__ import annotations

import http.server
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.ports import free_port

SMALL_CATALOGUE = Path(__file__).with_name("small_catalogue.toml")


@dataclass
class Server:
    port: int
    data_dir: Path
    config_path: Path
    proc: subprocess.Popen[bytes]
    log_path: Path
    host: str = "127.0.0.1"
    """The address it listens on."""

    @property
    def address(self) -> str:
        """Where a client on this machine reaches it: `127.0.0.1`, or `[::1]` for IPv6."""
        if ":" in self.host:
            return "[::1]"
        return "127.0.0.1" if self.host == "0.0.0.0" else self.host

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.address}:{self.port}/ws"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss_kib(self) -> int:
        """The process's resident memory, KiB."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        match = re.search(r"VmRSS:\s+(\d+)", status)
        assert match is not None
        return int(match[1])

    def errors_logged(self) -> list[str]:
        """The lines of its log at level error (or anything it printed that is not a log
        line, such as a traceback)."""
        return [line for line in self.log().split("\n")  # lines as a log reader cuts them
                if line and ('"level":"error"' in line or not line.startswith("{"))]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def write_config(path: Path, port: int, data_dir: Path, extra: str = "",
                 host: str = "127.0.0.1") -> None:
    path.write_text(
        f'[server]\nhost = "{host}"\nport = {port}\ndata_dir = "{data_dir}"\n'
        f'log_format = "json"\n{extra}\n',
        encoding="utf-8",
    )


def start_server(
    workdir: Path,
    extra_config: str = "",
    data_dir: Path | None = None,
    port: int | None = None,
    ready_timeout: float = 90,
    host: str = "127.0.0.1",
    ready: bool = True,
) -> Server:
    """Start `tickwire serve` with a config of `extra_config` and wait for a ready /healthz
    (or, without `ready`, for any answer of it: a server still starting says 503, one that
    does not admit this address 403)."""
    server = launch_server(workdir, extra_config, data_dir, port, host)
    wait_ready(server, ready_timeout, ready)
    return server


def wait_ready(server: Server, timeout: float = 90, ready: bool = True) -> None:
    """Wait as `start_server` does; a server that is not ready in time is killed."""
    try:
        _wait_ready(server, timeout, (200,) if ready else (200, 403, 503))
    except BaseException:
        server.kill()  # whatever went wrong, no server is left running
        raise


def launch_server(workdir: Path, extra_config: str = "", data_dir: Path | None = None,
                  port: int | None = None, host: str = "127.0.0.1") -> Server:
    """Start `tickwire serve` as `start_server` does, without waiting for it."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    data_dir = data_dir or workdir / "data"
    config = workdir / f"tickwire-{port}.toml"
    write_config(config, port, data_dir, extra_config, host)
    log_path = workdir / f"server-{port}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env = {k: v for k, v in env.items() if not k.startswith("TICKWIRE_")}
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tickwire", "serve", "--config", str(config)],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
    return Server(port, data_dir, config, proc, log_path, host)


def _wait_ready(server: Server, timeout: float, statuses: tuple[int, ...]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited with {server.proc.returncode}:\n{server.log()}")
        try:
            with urllib.request.urlopen(f"{server.url}/healthz", timeout=2) as resp:
                if resp.status in statuses:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code in statuses:
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not ready after {timeout} s:\n{server.log()}")


ADMIN_TOKEN = "s3cret-token"
"""The admin token of `start_admin_server`."""


def start_admin_server(workdir: Path) -> Server:
    """A small-catalogue server that admits 127.0.0.1 only, with the admin API on."""
    return start_server(workdir, f'catalogue = "{SMALL_CATALOGUE}"\n[access]\n'
                        f'allow = ["127.0.0.1/32"]\nadmin_token = "{ADMIN_TOKEN}"\n')


@contextmanager
def http_stub(answer: Callable[[str], tuple[int, bytes]]) -> Iterator[str]:
    """A small HTTP server in a thread, on a free port: every GET gets `answer(path)`, a
    status and a body sent as JSON. Yields its `127.0.0.1:port`."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = answer(self.path)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler) as stub:
        threading.Thread(target=stub.serve_forever, daemon=True).start()
        try:
            yield f"127.0.0.1:{stub.server_address[1]}"
        finally:
            stub.shutdown()
