"""A deployment for end-to-end tests: one ingest and its gateways, each a real `tickwire
serve` process, over a real redis-server (kind "redis") or the ingest's Unix socket (kind
"local")."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.e2e.conftest import small_config
from tests.e2e.server import Server, launch_server, start_server, wait_ready
from tests.redis_server import RedisServer, unique_prefix

T = TypeVar("T")


def engine_config(redis_url: str, prefix: str, role: str) -> str:
    """The `[engine]` table of one process of a deployment (short leases, for quick tests)."""
    return (f'\n[engine]\nkind = "redis"\nurl = "{redis_url}"\nprefix = "{prefix}"\n'
            f'lease = 2\nrole = "{role}"\n')


def local_engine_config(workdir: Path, role: str) -> str:
    return f'\n[engine]\nkind = "local"\nsocket = "{workdir / "engine.sock"}"\nrole = "{role}"\n'


@dataclass
class Cluster:
    workdir: Path
    redis: RedisServer | None
    """None for kind "local"."""
    config: str
    """Every process's config, but the `[engine]` table."""
    prefix: str
    ingest: Server
    gateways: list[Server] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return "local" if self.redis is None else "redis"

    def role_config(self, role: str) -> str:
        if self.redis is None:
            return self.config + local_engine_config(self.workdir, role)
        return self.config + engine_config(self.redis.url, self.prefix, role)

    def start_ingest(self, ready: bool = True) -> Server:
        """The ingest again, on its port and data dir (after it was stopped or killed)."""
        self.ingest = start_server(self.workdir / "ingest", self.role_config("ingest"),
                                   data_dir=self.ingest.data_dir, port=self.ingest.port,
                                   ready=ready)
        return self.ingest

    def stop(self) -> None:
        for server in [*self.gateways, self.ingest]:
            server.stop()


def start_cluster(workdir: Path, redis: RedisServer | None, extra: str = "",
                  gateways: int = 2) -> Cluster:
    """An ingest of the small catalogue and `gateways` gateways, started together; each
    waited for until its /healthz says ready (through the ingest's socket without
    `redis`)."""
    cluster = Cluster(workdir, redis, small_config(extra), unique_prefix(),
                      None)  # type: ignore[arg-type]
    ingest = cluster.ingest = launch_server(workdir / "ingest", cluster.role_config("ingest"))
    cluster.gateways = [
        launch_server(workdir / f"gateway-{i + 1}", cluster.role_config("gateway"))
        for i in range(gateways)]
    try:
        for server in [ingest, *cluster.gateways]:
            wait_ready(server)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def get(server: Server, path: str, headers: dict[str, str] | None = None
        ) -> tuple[int, Any]:
    """The status and the decoded JSON of a GET (an error status's body too)."""
    request = urllib.request.Request(server.url + path, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def send(server: Server, method: str, path: str, token: str, body: object = None) -> int:
    """An admin call; its status."""
    request = urllib.request.Request(
        server.url + path, method=method, headers={"Authorization": f"Bearer {token}"},
        data=None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def wait_until(check: Callable[[], T | None], timeout: float = 10, every: float = 0.02,
               what: str = "") -> T:
    """Poll `check` until it gives something; an AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        time.sleep(every)
