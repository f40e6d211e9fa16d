"""One ingest and two gateways, joined through a real Redis or the ingest's own Unix socket
(the local engine): clients on either gateway get the same updates, and the cap, the limits
and the allow-list hold over both gateways together."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.cluster import Cluster, engine_config, get, send, start_cluster, wait_until
from tests.e2e.conftest import small_config
from tests.e2e.server import free_port, launch_server, wait_ready, write_config
from tests.redis_server import RedisServer, unique_prefix

TOKEN = "cluster-token"
ACCESS = f"""
[access]
allow = ["127.0.0.1/32"]
admin_token = "{TOKEN}"
trusted_proxies = ["127.0.0.1"]
"""
CODES = ("btcusdt", "ethusdt")
"""Products that trade around the clock (nothing here depends on the hour)."""


@pytest.fixture(scope="module", params=["redis", "local"])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Cluster]:
    redis = request.getfixturevalue("redis_server") if request.param == "redis" else None
    deployment = start_cluster(tmp_path_factory.mktemp("cluster"), redis, ACCESS)
    yield deployment
    deployment.stop()


async def collect(session: aiohttp.ClientSession, url: str, seconds: float
                  ) -> dict[str, list[bytes]]:
    """The bodies pushed for each of `CODES` over `seconds`, in the order they came."""
    got: dict[str, list[bytes]] = {code: [] for code in CODES}
    async with session.ws_connect(url) as ws:
        await ws.send_str(json.dumps({"Key": ",".join(CODES)}))
        deadline = asyncio.get_running_loop().time() + seconds
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                message = await ws.receive(timeout=left)
            except TimeoutError:
                break
            body = json.loads(message.data)["body"]
            got[body["StockCode"]].append(message.data)
    return got


def aligned(first: list[bytes], second: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """Both from the first body both have, to where the shorter ends."""
    common = next(body for body in first if body in set(second))
    i, j = first.index(common), second.index(common)
    n = min(len(first) - i, len(second) - j)
    return first[i:i + n], second[j:j + n]


async def test_a_client_on_each_gateway_gets_the_same_updates_in_order(
        cluster: Cluster) -> None:
    a, b = cluster.gateways
    async with aiohttp.ClientSession() as session:
        on_a, on_b = await asyncio.gather(collect(session, a.ws_url, 3.0),
                                          collect(session, b.ws_url, 3.0))
    for code in CODES:
        first, second = aligned(on_a[code], on_b[code])
        assert len(first) >= 5, (code, len(on_a[code]), len(on_b[code]))
        assert first == second, code
        times = [int(json.loads(body)["body"]["LastTime"]) for body in on_a[code]]
        assert times == sorted(times), code


async def test_six_websockets_per_ip_over_both_gateways(cluster: Cluster) -> None:
    a, b = cluster.gateways
    async with aiohttp.ClientSession() as session:
        opened = [await session.ws_connect(a.ws_url) for _ in range(4)]
        opened += [await session.ws_connect(b.ws_url) for _ in range(2)]
        for server in (a, b):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(server.ws_url)
            assert refused.value.status == 429
        await opened.pop(0).close()  # one on A ends: one more fits, on either gateway
        deadline = time.monotonic() + 10
        while True:
            try:
                opened.append(await session.ws_connect(b.ws_url))
                break
            except aiohttp.WSServerHandshakeError as exc:
                assert exc.status == 429 and time.monotonic() < deadline
                await asyncio.sleep(0.05)
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(a.ws_url)
        for ws in opened:
            await ws.close()


def test_three_quotes_a_second_per_code_over_both_gateways(cluster: Cluster) -> None:
    a, b = cluster.gateways
    path = "/getQuote.php?code=xrpusdt"
    for _ in range(5):
        time.sleep(1.1)  # a window of its own
        began = time.monotonic()
        statuses = [get(server, path)[0] for server in (a, b, a, b)]
        if time.monotonic() - began < 0.9:
            break  # else this machine was too slow to ask four times within a second
    assert statuses == [200, 200, 200, 429]
    status, refused = get(b, path)
    assert status == 429 and "xrpusdt" in refused["msg"]


VISITOR = {"X-Forwarded-For": "203.0.113.7"}


def visitor_status(server: object) -> int:
    return get(server, "/healthz", VISITOR)[0]  # type: ignore[arg-type]


def test_an_allow_list_change_on_one_gateway_applies_on_the_other_within_a_second(
        cluster: Cluster) -> None:
    a, b = cluster.gateways
    assert visitor_status(b) == 403
    assert send(a, "POST", "/admin/allow", TOKEN, {"cidr": "203.0.113.0/24"}) == 200
    changed = time.monotonic()
    wait_until(lambda: visitor_status(b) == 200, what="the visitor admitted on B")
    assert time.monotonic() - changed < 1.0
    assert send(a, "DELETE", "/admin/allow/203.0.113.0%2F24", TOKEN) == 200
    changed = time.monotonic()
    wait_until(lambda: visitor_status(b) == 403, what="the visitor refused on B")
    assert time.monotonic() - changed < 1.0


def test_tickwire_allow_on_the_ingests_data_dir_applies_on_every_gateway(
        cluster: Cluster) -> None:
    def allow(*args: str) -> None:
        subprocess.run([sys.executable, "-m", "tickwire", "allow", *args, "--data-dir",
                        str(cluster.ingest.data_dir)], check=True, capture_output=True,
                       timeout=60)

    allow("add", "203.0.113.0/24", "--note", "office")
    changed = time.monotonic()
    for gateway in cluster.gateways:
        wait_until(lambda g=gateway: visitor_status(g) == 200, what="admitted")  # type: ignore[misc]
    assert time.monotonic() - changed < 1.0
    allow("remove", "203.0.113.0/24")
    changed = time.monotonic()
    for gateway in cluster.gateways:
        wait_until(lambda g=gateway: visitor_status(g) == 403, what="refused")  # type: ignore[misc]
    assert time.monotonic() - changed < 1.0


def test_bars_running_past_the_window_come_from_the_ingest(cluster: Cluster) -> None:
    a, _ = cluster.gateways
    status, window = get(a, "/redis.php?code=btcusdt&time=1m&rows=600")
    assert status == 200 and len(window) == 600
    end = window[100][0]  # 600 rows up to it run past the window kept in Redis
    status, older = get(a, f"/redis.php?code=btcusdt&time=1m&rows=600&end={end}")
    assert status == 200 and older[:499] == window[100:599]
    assert all(x[0] - y[0] == 60_000 for x, y in itertools.pairwise(older))


def test_healthz_names_the_engine_role_and_the_ingest(cluster: Cluster) -> None:
    status, health = get(cluster.gateways[0], "/healthz")
    assert status == 200 and health["status"] == "ok"
    engine = health["engine"]
    assert engine["kind"] == cluster.kind and engine["role"] == "gateway"
    if cluster.kind == "redis":
        assert engine["ingest"] == "reporting" and engine["redis"]["connected"]
    else:
        assert engine["ingest"] == "connected" and engine["ok"]
    assert [f["kind"] for f in health["feeds"]] == ["sim"]
    status, ingest = get(cluster.ingest, "/healthz")
    assert status == 200 and ingest["role"] == "ingest" and ingest["status"] == "ok"
    assert get(cluster.ingest, "/getQuote.php?code=btcusdt")[0] == 404  # no clients here


def test_a_gateway_started_before_the_ingest_waits_and_says_so(
        redis_server: RedisServer, tmp_path: Path) -> None:
    config = Cluster(tmp_path, redis_server, small_config(), unique_prefix(),
                     None)  # type: ignore[arg-type]
    gateway = launch_server(tmp_path / "gateway", config.role_config("gateway"))
    try:
        wait_ready(gateway, ready=False)
        status, health = get(gateway, "/healthz")
        assert status == 503 and health["status"] == "starting"
        assert health["engine"]["ingest"] == "waiting"
        assert get(gateway, "/getQuote.php?code=btcusdt")[0] == 404
        ingest = launch_server(tmp_path / "ingest", config.role_config("ingest"))
        try:
            wait_ready(ingest)
            wait_until(lambda: get(gateway, "/healthz")[0] == 200, timeout=20,
                       what="the gateway ready")
            status, quote = get(gateway, "/getQuote.php?code=btcusdt")
            assert status == 200 and quote["data"]["body"]["StockCode"] == "btcusdt"
        finally:
            ingest.stop()
    finally:
        gateway.stop()


def healthz(base: str) -> dict[str, Any] | None:
    """`/healthz` at a URL; None when nothing answers there."""
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=5) as resp:
            answer: dict[str, Any] = json.loads(resp.read())
            return answer
    except OSError:
        return None


def test_tickwire_cluster_runs_an_ingest_and_gateways_sharing_a_port(
        redis_server: RedisServer, tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "cluster.toml"
    write_config(config, port, tmp_path / "data", small_config() + engine_config(
        redis_server.url, unique_prefix(), "all"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKWIRE_")}
    with (tmp_path / "cluster.log").open("wb") as log:
        ingest_port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "tickwire", "cluster", "--config",
                                 str(config), "--gateways", "2", "--ingest-port",
                                 str(ingest_port)], stdout=log, stderr=subprocess.STDOUT,
                                env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        gateways: set[str] = set()

        def both_answer() -> bool:  # the kernel spreads new connections over both
            answer = healthz(url)
            if answer is not None:
                gateways.add(answer["engine"]["gateway"]["id"])
            return len(gateways) == 2

        wait_until(both_answer, timeout=60, every=0.05, what="both gateways answering")
        ingest = healthz(f"http://127.0.0.1:{ingest_port}")
        assert ingest is not None and ingest["role"] == "ingest"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, (tmp_path / "cluster.log").read_text()
    assert healthz(url) is None  # every process has stopped


def test_tickwire_cluster_on_the_local_engine_needs_no_redis(tmp_path: Path) -> None:
    port, ingest_port = free_port(), free_port()
    config = tmp_path / "cluster.toml"
    write_config(config, port, tmp_path / "data", small_config())
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKWIRE_")}
    with (tmp_path / "cluster.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "tickwire", "cluster", "--config",
                                 str(config), "--gateways", "2", "--engine", "local",
                                 "--ingest-port", str(ingest_port)],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        gateways: set[int] = set()

        def both_answer() -> bool:
            answer = healthz(url)
            if answer is not None and answer["status"] == "ok":
                gateways.add(answer["engine"]["pid"])
            return len(gateways) == 2

        wait_until(both_answer, timeout=60, every=0.05, what="both gateways answering")
        ingest = healthz(f"http://127.0.0.1:{ingest_port}")
        assert ingest is not None and ingest["engine"]["gateways"] == 2
        with urllib.request.urlopen(url + "/getQuote.php?code=btcusdt", timeout=10) as resp:
            quote = json.loads(resp.read())
        assert quote["data"]["body"]["StockCode"] == "btcusdt"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, (tmp_path / "cluster.log").read_text()
    assert healthz(url) is None
    assert not (tmp_path / "data" / "engine.sock").exists()
    assert "socket" in (tmp_path / "cluster.log").read_text().splitlines()[0]
