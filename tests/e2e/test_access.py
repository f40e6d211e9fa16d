"""PROTOCOL section 2: the allow-list, the admin API, trusted proxies."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import small_config
from tests.e2e.server import ADMIN_TOKEN, Server, start_admin_server, start_server

TOKEN = ADMIN_TOKEN
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def access_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_admin_server(tmp_path_factory.mktemp("access"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def proxy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("proxy"), small_config(
        '[access]\nallow = ["127.0.0.0/8"]\ntrusted_proxies = ["127.0.0.1"]\n'))
    yield srv
    srv.stop()


def session_from(ip: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(ip, 0)))


async def call(session: aiohttp.ClientSession, method: str, url: str, **kw: Any
               ) -> tuple[int, Any]:
    async with session.request(method, url, **kw) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_unlisted_ip_refused_then_admitted_by_admin_without_restart(
    access_server: Server,
) -> None:
    base = access_server.url
    async with session_from("127.0.0.2") as outsider, session_from("127.0.0.1") as admin:
        status, body = await call(outsider, "GET", f"{base}/getQuote.php?code=btcusdt")
        assert status == 403
        assert body == {"code": 403, "msg": "IP 127.0.0.2 is not authorized", "data": None}
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await outsider.ws_connect(access_server.ws_url)
        assert refused.value.status == 403

        status, body = await call(admin, "POST", f"{base}/admin/allow", headers=ADMIN,
                                  json={"cidr": "127.0.0.2", "note": "test client"})
        assert status == 200 and body["data"]["cidr"] == "127.0.0.2/32"

        status, body = await call(outsider, "GET", f"{base}/getQuote.php?code=btcusdt")
        assert status == 200 and body["data"]["body"]["StockCode"] == "btcusdt"
        async with outsider.ws_connect(access_server.ws_url) as ws:
            await ws.send_str('{"ping":1}')
            assert json.loads((await ws.receive(5)).data) == {"pong": 1}

        status, _ = await call(admin, "DELETE", f"{base}/admin/allow/127.0.0.2%2F32",
                               headers=ADMIN)
        assert status == 200
        status, _ = await call(outsider, "GET", f"{base}/getCategory.php")
        assert status == 403


async def test_admin_needs_the_token(access_server: Server) -> None:
    base = access_server.url
    async with aiohttp.ClientSession() as session:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            status, body = await call(session, "GET", f"{base}/admin/allow", headers=headers)
            assert status == 401 and body["code"] == 401 and "admin token" in body["msg"]
        status, body = await call(session, "GET", f"{base}/admin/allow", headers=ADMIN)
        assert status == 200
        assert {"cidr": "127.0.0.1/32", "note": "from the config file", "source": "config",
                "added_ms": 0} in body["data"]["list"]


async def test_admin_refuses_bad_input_and_config_entries(access_server: Server) -> None:
    base = access_server.url
    async with aiohttp.ClientSession() as session:
        status, body = await call(session, "POST", f"{base}/admin/allow", headers=ADMIN,
                                  json={"cidr": "300.1.2.3/8"})
        assert status == 400 and "bad cidr" in body["msg"]
        status, body = await call(session, "POST", f"{base}/admin/allow", headers=ADMIN,
                                  data=b"not json")
        assert status == 400 and "bad body" in body["msg"]
        status, body = await call(session, "DELETE", f"{base}/admin/allow/127.0.0.1",
                                  headers=ADMIN)
        assert status == 409 and "config file" in body["msg"]
        status, body = await call(session, "DELETE", f"{base}/admin/allow/10.9.9.0%2F24",
                                  headers=ADMIN)
        assert status == 404


def test_admin_is_off_without_a_token(strict_server: Server) -> None:
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{strict_server.url}/admin/allow", timeout=5)
    assert info.value.code == 404 and "admin API is off" in json.loads(info.value.read())["msg"]


def test_allow_list_survives_a_restart(tmp_path: Any) -> None:
    config = small_config(f'[access]\nallow = ["127.0.0.1/32"]\nadmin_token = "{TOKEN}"\n')
    first = start_server(tmp_path, config)
    cli = [sys.executable, "-m", "tickwire", "allow"]
    added = subprocess.run([*cli, "add", "127.0.0.7", "--note", "kept", "--server", first.url,
                            "--token", TOKEN], capture_output=True, text=True, timeout=30)
    assert added.returncode == 0, added.stderr
    first.stop()
    second = start_server(tmp_path, config, data_dir=first.data_dir)
    try:
        listed = subprocess.run([*cli, "list", "--server", second.url, "--token", TOKEN],
                                capture_output=True, text=True, timeout=30)
        assert "127.0.0.7/32" in listed.stdout and "kept" in listed.stdout
        assert "127.0.0.1/32" in listed.stdout and "config" in listed.stdout

        async def outsider_status() -> int:
            async with session_from("127.0.0.7") as session:
                return (await call(session, "GET", f"{second.url}/getCategory.php"))[0]

        assert asyncio.run(outsider_status()) == 200
        # the shell changes the store directly; the running server follows within 2 s
        removed = subprocess.run([*cli, "remove", "127.0.0.7", "--data-dir",
                                  str(second.data_dir)], capture_output=True, text=True,
                                 timeout=30)
        assert removed.returncode == 0, removed.stderr
        for _ in range(40):
            if asyncio.run(outsider_status()) == 403:
                break
            asyncio.run(asyncio.sleep(0.1))
        assert asyncio.run(outsider_status()) == 403
    finally:
        second.stop()


def test_allow_cli_errors_are_one_line(tmp_path: Any) -> None:
    result = subprocess.run([sys.executable, "-m", "tickwire", "allow", "add", "nonsense",
                             "--data-dir", str(tmp_path)], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip() == "tickwire: 'nonsense' is not an IP address or CIDR range"


@pytest.mark.parametrize(("source", "forwarded", "status", "named"), [
    ("127.0.0.1", "203.0.113.9", 403, "203.0.113.9"),
    ("127.0.0.1", "203.0.113.9, 127.0.0.1", 403, "203.0.113.9"),
    ("127.0.0.1", "198.51.100.1, 127.0.0.5", 200, None),
    ("127.0.0.3", "203.0.113.9", 200, None),  # not a trusted proxy: the header is ignored
    ("127.0.0.1", "garbage", 200, None),
])
async def test_forwarded_for_is_believed_only_from_trusted_proxies(
    proxy_server: Server, source: str, forwarded: str, status: int, named: str | None,
) -> None:
    async with session_from(source) as session:
        code, body = await call(session, "GET", f"{proxy_server.url}/getCategory.php",
                                headers={"X-Forwarded-For": forwarded})
    assert code == status
    if named:
        assert body["msg"] == f"IP {named} is not authorized"
