"""`tickwire config`: the configuration serve would run with, as TOML or JSON."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner, Result

import tickwire.cli
from tickwire.cli.config_command import HIDDEN
from tickwire.config import Config, load_config

SMALL_CATALOGUE = Path(__file__).parents[1] / "e2e" / "small_catalogue.toml"


@pytest.fixture(autouse=True)
def _no_tickwire_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("TICKWIRE_"):
            monkeypatch.delenv(name)
    yield


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(tickwire.cli.app, ["config", *args], env=env)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tickwire.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_defaults_print_as_toml_that_reads_back() -> None:
    result = run()
    assert result.exit_code == 0, result.output
    assert msgspec.convert(tomllib.loads(result.output), Config) == Config()
    assert max(len(line) for line in result.output.splitlines()) <= 80


def test_file_environment_and_flags_in_serve_s_order(tmp_path: Path) -> None:
    config = write(tmp_path, '[server]\nport = 1111\nhost = "0.0.0.0"\ngzip = true\n'
                             '[limits]\nsymbols = 9\n')
    result = run("--config", str(config), "--port", "3333", "--data-dir", "/srv/data",
                 env={"TICKWIRE_SERVER_PORT": "2222", "TICKWIRE_LIMITS_SYMBOLS": "7"})
    assert result.exit_code == 0, result.output
    shown = tomllib.loads(result.output)
    assert shown["server"]["port"] == 3333                        # flag over variable
    assert shown["limits"]["symbols"] == 7                        # variable over file
    assert shown["server"]["host"] == "0.0.0.0" and shown["server"]["gzip"] is True
    assert shown["server"]["data_dir"] == "/srv/data"


def test_the_file_named_by_tickwire_config_is_read(tmp_path: Path) -> None:
    config = write(tmp_path, "[server]\nport = 4321\n")
    result = run(env={"TICKWIRE_CONFIG": str(config)})
    assert tomllib.loads(result.output)["server"]["port"] == 4321


def test_json_and_the_admin_token_hidden(tmp_path: Path) -> None:
    config = write(tmp_path, '[access]\nadmin_token = "s3cret"\n'
                             '[[products]]\ncode = "my_code"\nname = "Mine"\ncategory = "4"\n'
                             'precision = 2\n')
    for args in (["--config", str(config)], ["--config", str(config), "--json"]):
        result = run(*args)
        assert result.exit_code == 0, result.output
        assert "s3cret" not in result.output
    shown = json.loads(result.output)
    assert shown["access"]["admin_token"] == HIDDEN
    assert shown["products"][0]["code"] == "my_code"
    shown["access"]["admin_token"] = "s3cret"
    assert msgspec.convert(shown, Config) == load_config(config, environ={})


def test_an_empty_admin_token_stays_empty() -> None:
    assert tomllib.loads(run().output)["access"]["admin_token"] == ""


@pytest.mark.parametrize(("text", "key"), [
    ("[server]\nport = 70000\n", "server.port"),
    ("[server]\nprot = 1\n", "server.prot"),
    ('[[feeds]]\nkind = "sim"\ncodes = ["nope"]\n', "feeds[0].codes"),
    (f'[server]\ncatalogue = "{SMALL_CATALOGUE}"\n[[products]]\ncode = "x1"\nname = "X"\n'
     'category = "4"\nprecision = 2\nhours = "someday 9-5"\n', "products['x1'].hours"),
    ('[[products]]\ncode = "x1"\nname = "X"\ncategory = "99"\nprecision = 2\n',
     "products['x1'].category"),
])
def test_a_bad_config_exits_2_with_one_line_naming_the_key(
    tmp_path: Path, text: str, key: str,
) -> None:
    result = run("--config", str(write(tmp_path, text)))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tickwire: config error: ")
    assert key in lines[0]


def test_a_bad_variable_is_named_too() -> None:
    result = run(env={"TICKWIRE_WEBSOCKET_IDLE_TIMEOUT": "soon"})
    assert result.exit_code == 2
    assert "websocket.idle_timeout" in result.output


def test_a_redis_deployment_s_flags_and_its_password_hidden() -> None:
    result = run("--engine", "redis", "--role", "gateway", "--engine-url",
                 "redis://:s3cret@10.0.0.5:6379/0", "--json")
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output
    engine = json.loads(result.output)["engine"]
    assert (engine["kind"], engine["role"], engine["url"]) == (
        "redis", "gateway", "redis://****@10.0.0.5:6379/0")
    refused = run("--role", "ingest")
    assert refused.exit_code == 2 and "engine.role" in refused.output
