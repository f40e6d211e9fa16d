"""Settings: defaults, the TOML file, TICKWIRE_* variables, overrides, and ConfigError."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tickwire.config import (
    Config,
    ConfigError,
    SimFeedConfig,
    listen_address,
    load_config,
    shown_url,
)


def write(tmp_path: Path, text: str, name: str = "tickwire.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str) -> Config:
    return load_config(write(tmp_path, text), environ={})


# ---- defaults ---------------------------------------------------------------------------

def test_defaults_are_the_contracts() -> None:
    config = load_config(None, environ={})
    server = config.server
    assert (server.port, server.host) == (1008, "127.0.0.1")
    assert server.timezone == "Asia/Shanghai"
    assert server.gzip is False
    assert server.kline_order == "newest_first"
    assert server.extra_ports == []
    assert config.access.allow == ["127.0.0.0/8", "::1"]
    assert config.access.ws_connections_per_ip == 6
    limits = config.limits
    assert (limits.quote_per_code, limits.kline_per_code, limits.category, limits.symbols) == \
        (3, 5, 2, 2)
    assert config.feeds == [SimFeedConfig(seed=1, rate=5.0)]
    assert config.engine.kind == "memory"
    assert config.websocket.max_message_bytes == 65536
    assert config.websocket.idle_timeout == 30
    assert config.products == []
    assert (config.record.path, config.record.codes) == ("", [])  # recording off


def test_defaults_are_not_shared_between_loads() -> None:
    one = load_config(None, environ={})
    one.access.allow.append("10.0.0.0/8")
    assert load_config(None, environ={}).access.allow == ["127.0.0.0/8", "::1"]


def test_the_process_environment_is_read_when_none_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in list(os.environ):
        if name.startswith("TICKWIRE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TICKWIRE_SERVER_PORT", "9123")
    assert load_config().server.port == 9123


# ---- the file ---------------------------------------------------------------------------

def test_a_toml_file_sets_every_section(tmp_path: Path) -> None:
    config = load_text(tmp_path, """
[server]
host = "0.0.0.0"
port = 8080
extra_ports = [80]
timezone = "UTC"
gzip = true
kline_order = "oldest_first"

[access]
allow = ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"]
admin_token = "s3cret"
trusted_proxies = ["127.0.0.1"]
ws_connections_per_ip = 2

[limits]
quote_per_code = 10
kline_per_code = 11
category = 12
symbols = 13

[websocket]
max_codes = 50
ping_interval = 5
idle_timeout = 20

[record]
path = "recordings"
codes = ["btcusdt", "ethusdt"]

[[feeds]]
kind = "sim"
seed = 42
rate = 0.5
history = false
codes = ["btcusdt"]

[[feeds]]
seed = 43
""")
    assert (config.server.host, config.server.port, config.server.extra_ports) == \
        ("0.0.0.0", 8080, [80])
    assert (config.server.timezone, config.server.gzip, config.server.kline_order) == \
        ("UTC", True, "oldest_first")
    assert config.access.allow == ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"]
    assert config.access.admin_token == "s3cret"
    assert config.access.ws_connections_per_ip == 2
    assert (config.limits.quote_per_code, config.limits.kline_per_code,
            config.limits.category, config.limits.symbols) == (10, 11, 12, 13)
    assert (config.websocket.max_codes, config.websocket.ping_interval) == (50, 5)
    assert (config.record.path, config.record.codes) == ("recordings", ["btcusdt", "ethusdt"])
    assert config.feeds == [
        SimFeedConfig(seed=42, rate=0.5, history=False, codes=["btcusdt"]),
        SimFeedConfig(seed=43),
    ]


def test_a_partial_file_keeps_the_other_defaults(tmp_path: Path) -> None:
    config = load_text(tmp_path, "[server]\nport = 2000\n")
    assert config.server.port == 2000
    assert config.server.host == "127.0.0.1"
    assert config.limits.quote_per_code == 3


def test_tickwire_config_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 4321\n")
    assert load_config(None, environ={"TICKWIRE_CONFIG": str(path)}).server.port == 4321


# ---- environment and overrides ----------------------------------------------------------

def test_environment_variables_override_defaults() -> None:
    config = load_config(None, environ={
        "TICKWIRE_SERVER_PORT": "8080",
        "TICKWIRE_SERVER_GZIP": "true",
        "TICKWIRE_SERVER_TIMEZONE": "UTC",  # not a TOML value: taken as a string
        "TICKWIRE_SERVER_KLINE_ORDER": "oldest_first",
        "TICKWIRE_ACCESS_ALLOW": '["10.0.0.0/8", "::1"]',
        "TICKWIRE_ACCESS_WS_CONNECTIONS_PER_IP": "12",
        "TICKWIRE_LIMITS_QUOTE_PER_CODE": "9",
        "TICKWIRE_WEBSOCKET_IDLE_TIMEOUT": "60.5",
        "TICKWIRE_RECORD_PATH": "/var/lib/tickwire/recordings",
        "TICKWIRE_RECORD_CODES": '["btcusdt"]',
    })
    assert config.server.port == 8080
    assert config.server.gzip is True
    assert config.server.timezone == "UTC"
    assert config.server.kline_order == "oldest_first"
    assert config.access.allow == ["10.0.0.0/8", "::1"]
    assert config.access.ws_connections_per_ip == 12
    assert config.limits.quote_per_code == 9
    assert config.websocket.idle_timeout == 60.5
    assert (config.record.path, config.record.codes) == ("/var/lib/tickwire/recordings",
                                                         ["btcusdt"])


def test_other_environment_variables_are_ignored() -> None:
    config = load_config(None, environ={
        "PORT": "1", "TICKWIRE": "x", "TICKWIRE_FOO_BAR": "1", "TICKWIRE_SERVERPORT": "2",
        "tickwire_server_port": "3",
    })
    assert config.server.port == 1008


def test_environment_beats_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 2000\nhost = \"0.0.0.0\"\n")
    config = load_config(path, environ={"TICKWIRE_SERVER_PORT": "3000"})
    assert config.server.port == 3000
    assert config.server.host == "0.0.0.0"


def test_explicit_overrides_win_over_environment_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 2000\n")
    environ = {"TICKWIRE_SERVER_PORT": "3000", "TICKWIRE_SERVER_HOST": "10.1.1.1"}
    config = load_config(path, {"server.port": 4000, "server.host": None}, environ)
    assert config.server.port == 4000
    assert config.server.host == "10.1.1.1"  # None: not given, the environment stands
    config = load_config(None, {"limits.symbols": 7, "access.allow": ["0.0.0.0/0"]},
                         environ={})
    assert config.limits.symbols == 7
    assert config.access.allow == ["0.0.0.0/0"]


# ---- errors name the key ----------------------------------------------------------------

@pytest.mark.parametrize(("text", "key", "detail"), [
    ('[server]\nport = "abc"\n', "server.port", "int"),
    ("[server]\ngzip = \"yes\"\n", "server.gzip", "bool"),
    ("[limits]\nquote_per_code = 1.5\n", "limits.quote_per_code", "int"),
    ('[[feeds]]\nseed = "x"\n', "feeds[0].seed", "int"),
    ("[server]\nbogus = 1\n", "server.bogus", "unknown key"),
    ("[bogus]\nx = 1\n", "bogus", "unknown key"),
    ('[access]\nallow = ["10.0.0.300/8"]\n', "access.allow[0]", "10.0.0.300/8"),
    ('[access]\nallow = ["127.0.0.1", "not-an-ip"]\n', "access.allow[1]", "not-an-ip"),
    ('[access]\ntrusted_proxies = ["1.2.3"]\n', "access.trusted_proxies[0]", "1.2.3"),
    ("[server]\nport = 70000\n", "server.port", "70000"),
    ("[server]\nport = -1\n", "server.port", "-1"),
    ("[server]\nextra_ports = [80, 65536]\n", "server.extra_ports[1]", "65536"),
    ('[server]\ntimezone = "Mars/Olympus"\n', "server.timezone", "Mars/Olympus"),
    ('[server]\nkline_order = "sideways"\n', "server.kline_order", "sideways"),
    ("[limits]\nquote_per_code = 0\n", "limits.quote_per_code", "greater than 0"),
    ("[access]\nws_connections_per_ip = 0\n", "access.ws_connections_per_ip", "at least 1"),
    ("[websocket]\nping_interval = 40\n", "websocket.ping_interval", "idle_timeout"),
    ("[[feeds]]\nrate = 0\n", "feeds[0].rate", "(0, 100000]"),
    ("feeds = []\n", "feeds", "at least one"),
    ('[[feeds]]\nkind = "nosuch"\n', "feeds[0].kind", "one of: sim, replay"),
    ('[engine]\nkind = "nosuch"\n', "engine.kind", "memory, local, redis"),
    ('[engine]\nrole = "gateway"\n', "engine.role", 'kind = "local" or "redis"'),
    (f'[engine]\nkind = "local"\nsocket = "/{"s" * 107}"\n', "engine.socket", "at most 107"),
    ('[engine]\nrole = "nosuch"\n', "engine.role", "all, ingest, gateway"),
    ('[engine]\nkind = "redis"\nurl = "http://127.0.0.1:6379"\n', "engine.url", "redis://"),
    ('[engine]\nkind = "redis"\nurl = "redis://"\n', "engine.url", "redis://"),
    ('[engine]\nkind = "redis"\nlease = 0.5\n', "engine.lease", "1 to 600"),
    ('[engine]\nkind = "redis"\nprefix = "a b"\n', "engine.prefix", "'a b'"),
    ('[engine]\non_error = "maybe"\n', "engine.on_error", "open, closed"),
    ('[engine]\nkind = "redis"\nkept_bars = 100001\n', "engine.kept_bars", "0 to 100000"),
    ('[record]\ncodes = "btcusdt"\n', "record.codes", "array"),
    ("[record]\nfolder = 1\n", "record.folder", "unknown key"),
    ('[[feeds]]\nkind = "exchange"\nexchange = "binance"\n', "feeds[0]", "symbols"),
    ('[[feeds]]\nkind = "exchange"\nexchange = "Binance"\nsymbols = ["BTC/USDT"]\n',
     "feeds[0].exchange", "ccxt exchange id"),
    ('[[feeds]]\nkind = "exchange"\nexchange = "binance"\nsymbols = []\n',
     "feeds[0].symbols", "at least one"),
    ('[[feeds]]\nkind = "exchange"\nexchange = "binance"\nsymbols = ["BTC/USDT", "BTCUSDT"]\n',
     "feeds[0].symbols[1]", "'BTCUSDT'"),
    ('[[feeds]]\nkind = "exchange"\nexchange = "okx"\nsymbols = ["BTC/USDT"]\ndepth = 11\n',
     "feeds[0].depth", "1 to 10"),
    ('[[feeds]]\nkind = "exchange"\nexchange = "okx"\nsymbols = ["BTC/USDT"]\ntrades = 51\n',
     "feeds[0].trades", "0 (none) to 50"),
    ('[[feeds]]\nkind = "exchange"\nexchange = "okx"\nsymbols = ["BTC/USDT"]\n'
     'rest_url = "http://127.0.0.1:9"\n', "feeds[0].rest_url", "binance"),
    ('[[feeds]]\nkind = "exchange"\nexchange = "binance"\nsymbols = ["BTC/USDT"]\n'
     'ws_url = "ftp://x"\n', "feeds[0].ws_url", ""),
    ('[access]\nadmin_token = "t"\nadmin_listen = "1009"\n', "access.admin_listen",
     "HOST:PORT"),
    ('[access]\nadmin_token = "t"\nadmin_listen = "::1:1009"\n', "access.admin_listen",
     "HOST:PORT"),
    ('[access]\nadmin_token = "t"\nadmin_listen = "127.0.0.1:0"\n', "access.admin_listen",
     "HOST:PORT"),
    ('[access]\nadmin_listen = "127.0.0.1:1009"\n', "access.admin_listen",
     "off without access.admin_token"),
    ("[websocket]\nidle_timeout = inf\n", "websocket.idle_timeout", "finite"),
    ("[websocket]\nmessages_per_second = nan\n", "websocket.messages_per_second", "finite"),
    ("[server]\nhttp_idle_timeout = nan\n", "server.http_idle_timeout", "finite"),
    ("[[feeds]]\nrate = inf\n", "feeds[0].rate", "finite"),
])
def test_config_errors_name_the_key(tmp_path: Path, text: str, key: str, detail: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    message = str(info.value)
    assert message.startswith(f"{key}: "), message
    assert detail in message
    assert "\n" not in message


@pytest.mark.parametrize("text", ["[server]\nhost = " + "[" * 5000 + "]" * 5000 + "\n",
                                  "x = " + "{a=" * 5000 + "1" + "}" * 5000 + "\n"])
def test_toml_nested_too_deeply_is_a_config_error(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="not valid TOML: nested too deeply"):
        load_text(tmp_path, text)
    with pytest.raises(ConfigError, match="TICKWIRE_SERVER_HOST: nested too deeply"):
        load_config(None, environ={"TICKWIRE_SERVER_HOST": "[" * 5000 + "]" * 5000})


def test_admin_listen_takes_an_address_and_port() -> None:
    for text, host in [("127.0.0.1:1009", "127.0.0.1"), ("[::1]:1009", "::1"),
                       ("localhost:1009", "localhost")]:
        config = load_config(None, {"access.admin_token": "t", "access.admin_listen": text},
                             environ={})
        assert listen_address(config.access.admin_listen) == (host, 1009)


def test_a_bad_environment_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^server\.port: "):
        load_config(None, environ={"TICKWIRE_SERVER_PORT": "abc"})
    with pytest.raises(ConfigError, match=r"^access\.allow\[0\]: "):
        load_config(None, environ={"TICKWIRE_ACCESS_ALLOW": '["bad"]'})


def test_a_bad_override_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^server\.port: .*70000"):
        load_config(None, {"server.port": 70000}, environ={})


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[server\nport = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(info.value).startswith(f"{path}: not valid TOML")
    assert "line 1" in str(info.value)


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[server]\nhost = "\xe9"\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, environ={})


def test_a_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(info.value) == f"{path}: No such file or directory"


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


# ---- the command line -------------------------------------------------------------------

def _serve(config: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKWIRE_")}
    return subprocess.run(
        [sys.executable, "-m", "tickwire", "serve", "--config", str(config)],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
    )


@pytest.mark.parametrize(("text", "key"), [
    ("[server]\nport = 70000\n", "server.port"),
    ('[server]\nport = "x"\n', "server.port"),
    ("[server]\nbogus = true\n", "server.bogus"),
    ('[access]\nallow = ["300.1.1.1"]\n', "access.allow[0]"),
    ('[server]\ntimezone = "Nowhere/Land"\n', "server.timezone"),
    ('[server]\nkline_order = "random"\n', "server.kline_order"),
    ('[record]\npath = "rec"\ncodes = ["btcusdt", "nosuch"]\n', "record.codes"),
])
def test_serve_with_a_bad_config_exits_2_with_one_line(
    tmp_path: Path, text: str, key: str
) -> None:
    result = _serve(write(tmp_path, text), tmp_path)
    assert result.returncode == 2, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert key in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "tickwire-data").exists()  # nothing started


def test_serve_with_a_missing_config_exits_2_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    result = _serve(missing, tmp_path)
    assert result.returncode == 2, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert str(missing) in lines[0]


def test_serve_with_a_recording_folder_it_cannot_write_in_stops_at_start(
        tmp_path: Path) -> None:
    (tmp_path / "rec").write_text("a file where the folder should be")
    result = _serve(write(tmp_path, f'[record]\npath = "{tmp_path / "rec"}"\n'), tmp_path)
    assert result.returncode == 1, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0] == (f"tickwire: record.path: cannot write recordings in {tmp_path / 'rec'}: "
                        "not a folder")
    assert not (tmp_path / "tickwire-data").exists()  # nothing started


def test_a_redis_deployment_reads_from_the_file_the_environment_and_flags(
        tmp_path: Path) -> None:
    path = write(tmp_path, '[engine]\nkind = "redis"\nurl = "redis://10.0.0.5:6379/1"\n')
    config = load_config(path, {"engine.role": "gateway"},
                         environ={"TICKWIRE_ENGINE_ON_ERROR": "closed"})
    engine = config.engine
    assert (engine.kind, engine.url, engine.role, engine.on_error, engine.lease,
            engine.prefix) == ("redis", "redis://10.0.0.5:6379/1", "gateway", "closed", 5.0,
                               "tickwire")


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://:s3cret@10.0.0.5:6379/0", "redis://****@10.0.0.5:6379/0"),
    ("rediss://app:s3cret@redis.example:6380", "rediss://app:****@redis.example:6380"),
    ("redis://10.0.0.5:6379/0", "redis://10.0.0.5:6379/0"),
    ("unix:///run/redis.sock", "unix:///run/redis.sock"),
])
def test_a_redis_password_is_never_shown(url: str, shown: str) -> None:
    assert shown_url(url) == shown
