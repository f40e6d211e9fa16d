"""The config file adds products and points at another catalogue; bad entries stop the start."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.e2e import rawws
from tests.e2e.conftest import small_config
from tests.e2e.server import free_port, start_server, write_config

EXTRA_PRODUCT = """
[[products]]
code = "my_index"
name = "我的指数"
category = "7"
precision = 1
depth = 3
volume = true
trades = true
hours = "24/7"
price = 1234.5
volatility = 0.01
lot = 2.0
volume_precision = 0
"""


def test_config_adds_a_product(tmp_path: Path) -> None:
    server = start_server(tmp_path, small_config(EXTRA_PRODUCT))
    try:
        with urllib.request.urlopen(
                f"{server.url}/getSymbolList.php?category=7&pageSize=100") as resp:
            listed = json.loads(resp.read())["data"]["list"]
        assert {"code": "my_index", "name": "我的指数"} in listed
        with urllib.request.urlopen(f"{server.url}/getQuote.php?code=my_index") as resp:
            body = json.loads(resp.read())["data"]["body"]
        assert body["StockCode"] == "my_index" and len(body["Depth"]["Buy"]) == 3
        with urllib.request.urlopen(f"{server.url}/redis.php?code=my_index&time=1m&rows=600"
                                    ) as resp:
            assert len(json.loads(resp.read())) == 600
    finally:
        server.stop()


def _serve_with(tmp_path: Path, extra: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "bad.toml"
    write_config(config, free_port(), tmp_path / "data", small_config(extra))
    return subprocess.run([sys.executable, "-m", "tickwire", "serve", "--config", str(config)],
                          capture_output=True, text=True, timeout=60)


def test_bad_product_hours_exit_2_naming_the_key(tmp_path: Path) -> None:
    result = _serve_with(tmp_path, EXTRA_PRODUCT.replace('"24/7"', '"someday 9-5"'))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "products['my_index'].hours" in lines[0]


def test_missing_catalogue_file_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    write_config(config, free_port(), tmp_path / "data", 'catalogue = "/nonexistent.toml"\n')
    result = subprocess.run([sys.executable, "-m", "tickwire", "serve", "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "/nonexistent.toml" in result.stderr.strip().splitlines()[-1]


def test_extra_ports_serve_the_same_paths(tmp_path: Path) -> None:
    extra = free_port()
    server = start_server(tmp_path, f"extra_ports = [{extra}]\n" + small_config())
    try:
        for port in (server.port, extra):
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/getQuote.php?code=btcusdt") as resp:
                assert json.loads(resp.read())["data"]["body"]["StockCode"] == "btcusdt"
            sock = rawws.connect(port)
            rawws.send_text(sock, '{"ping":5}')
            assert rawws.read_frame(sock) == (1, b'{"pong":5}')
            sock.close()
    finally:
        server.stop()


TWO_FEEDS = """
[[feeds]]
kind = "sim"
codes = ["btcusdt"]
seed = 7
rate = 20

[[feeds]]
kind = "sim"
"""


def test_two_feeds_share_the_catalogue_each_shown_in_healthz(tmp_path: Path) -> None:
    server = start_server(tmp_path, small_config() + TWO_FEEDS)
    try:
        with urllib.request.urlopen(f"{server.url}/healthz") as resp:
            health = json.loads(resp.read())
        feeds = {f["name"]: f for f in health["feeds"]}
        assert set(feeds) == {"sim-0", "sim-1"}
        assert all(f["state"] == "live" and f["restarts"] == 0 for f in feeds.values())
        assert feeds["sim-0"]["products"] == 1
        assert feeds["sim-1"]["products"] == health["products"] - 1
        with urllib.request.urlopen(f"{server.url}/getQuote.php?code=btcusdt,ethusdt") as resp:
            bodies = json.loads(resp.read())["data"]["body"]
        assert [b["StockCode"] for b in bodies] == ["btcusdt", "ethusdt"]
    finally:
        server.stop()


def test_two_feeds_of_one_product_exit_2_naming_both(tmp_path: Path) -> None:
    result = _serve_with(tmp_path, TWO_FEEDS + 'codes = ["ethusdt", "btcusdt"]\n')
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "feeds[0] and feeds[1] both drive 'btcusdt'" in lines[0]
