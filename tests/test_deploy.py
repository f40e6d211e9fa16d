"""deploy/: the systemd unit and the Dockerfile run real `tickwire` commands; the image
builds and serves where a container engine runs."""

from __future__ import annotations

import configparser
import json
import os
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tickwire.cli

ROOT = Path(__file__).parents[1]
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "tickwire.service"
VENV = "/opt/tickwire/.venv"
CONFIG = "/etc/tickwire/tickwire.toml"


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment, method-assign]  # keys keep their case
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser


def dockerfile_instruction(name: str) -> list[str]:
    """The JSON form of the last `name` instruction of deploy/Dockerfile."""
    lines = (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines()
    found = [line[len(name) + 1:] for line in lines if line.startswith(f"{name} ")]
    value: list[str] = json.loads(found[-1])
    return value


def help_of(args: list[str]) -> subprocess.CompletedProcess[str]:
    """`tickwire ARGS --help` as a real process: it prints the command's help when the
    command line parses, and exits 2 for an unknown command or option."""
    return subprocess.run([sys.executable, "-m", "tickwire", *args, "--help"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "200"})


def assert_accepted(args: list[str]) -> None:
    """`tickwire ARGS` is a real command line: it parses, every option is in the help."""
    result = help_of(args)
    assert result.returncode == 0, result.stderr
    for option in (a for a in args if a.startswith("-")):
        assert f" {option} " in result.stdout, option


def show_config(*args: str, variables: dict[str, str] | None = None
                ) -> dict[str, dict[str, object]]:
    """What `tickwire config` says with `args` and only these `TICKWIRE_*` variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKWIRE_")}
    env.update(variables or {})
    result = subprocess.run([sys.executable, "-m", "tickwire", "config", "--json", *args],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    shown: dict[str, dict[str, object]] = json.loads(result.stdout)
    return shown


# ---- the systemd unit -------------------------------------------------------------------

def test_the_unit_parses_with_what_a_service_needs() -> None:
    service = unit()["Service"]
    assert service["User"] == "tickwire" and service["Restart"] == "on-failure"
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_exec_start_is_a_real_serve_command_line() -> None:
    args = shlex.split(unit()["Service"]["ExecStart"])
    assert args[0] == f"{VENV}/bin/tickwire"
    assert args[1:] == ["serve", "--config", CONFIG]
    assert_accepted(args[1:])
    assert help_of(["serve", "--no-such-option"]).returncode == 2  # the check can fail


def test_the_unit_s_config_is_the_one_installed_and_it_loads() -> None:
    guide = (DEPLOY / "README.md").read_text(encoding="utf-8")
    assert f"deploy/tickwire.toml {CONFIG}" in guide        # installed where ExecStart reads
    assert f"python3 -m venv {VENV}" in guide               # the tickwire ExecStart runs
    assert "deploy/tickwire.service /etc/systemd/system/tickwire.service" in guide
    shown = show_config("--config", str(DEPLOY / "tickwire.toml"))
    state = "/var/lib/" + unit()["Service"]["StateDirectory"]
    assert shown["server"]["data_dir"] == state == unit()["Service"]["WorkingDirectory"]


# ---- the container image ----------------------------------------------------------------

def test_the_image_runs_a_real_serve_command_line() -> None:
    args = dockerfile_instruction("ENTRYPOINT") + dockerfile_instruction("CMD")
    assert args == ["tickwire", "serve", "--host", "0.0.0.0"]
    assert_accepted(args[1:])
    assert dockerfile_instruction("VOLUME") == ["/data"]
    assert "TICKWIRE_SERVER_DATA_DIR=/data" in (DEPLOY / "Dockerfile").read_text()


def test_the_guide_documents_the_allow_list_for_docker() -> None:
    guide = (DEPLOY / "README.md").read_text(encoding="utf-8")
    assert "docker build -f deploy/Dockerfile -t tickwire ." in guide
    assert "TICKWIRE_ACCESS_ALLOW=" in guide and "TICKWIRE_CONFIG=" in guide


@pytest.fixture(scope="module")
def docker() -> str:
    """The container engine's command; skips where none runs."""
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"no container engine: `docker info` could not run ({exc})")
    if info.returncode != 0:
        why = (info.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"no container engine: `docker info` failed ({why})")
    return "docker"


@pytest.fixture(scope="module")
def image(docker: str) -> Iterator[str]:
    tag = f"tickwire-test:{uuid.uuid4().hex[:12]}"
    subprocess.run([docker, "build", "-f", str(DEPLOY / "Dockerfile"), "-t", tag, str(ROOT)],
                   check=True, capture_output=True, timeout=900)
    yield tag
    subprocess.run([docker, "rmi", "-f", tag], capture_output=True, timeout=120)


@pytest.mark.slow
def test_the_image_builds_and_serves(docker: str, image: str) -> None:
    version = subprocess.run([docker, "run", "--rm", image, "--version"],
                             capture_output=True, text=True, timeout=120, check=True)
    assert version.stdout == f"tickwire {tickwire.cli.version()}\n"
    name = f"tickwire-test-{uuid.uuid4().hex[:12]}"
    subprocess.run([docker, "run", "-d", "--name", name, image], check=True,
                   capture_output=True, timeout=120)
    try:
        probe = [docker, "exec", name, "python", "-c",
                 "import urllib.request as u; "
                 "print(u.urlopen('http://127.0.0.1:1008/healthz', timeout=4).status)"]
        deadline = time.monotonic() + 120
        while True:
            result = subprocess.run(probe, capture_output=True, text=True, timeout=60)
            if result.stdout.strip() == "200":
                break
            assert time.monotonic() < deadline, result.stderr
            time.sleep(1)
        shown = subprocess.run([docker, "exec", name, "tickwire", "config", "--json"],
                               capture_output=True, text=True, timeout=60, check=True)
        assert json.loads(shown.stdout)["server"]["data_dir"] == "/data"
    finally:
        subprocess.run([docker, "rm", "-f", name], capture_output=True, timeout=120)


# ---- compose: Redis, the ingest, gateways, nginx -------------------------------------------

COMPOSE = DEPLOY / "compose.yaml"


def compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def config_in(service: dict[str, Any]) -> dict[str, dict[str, object]]:
    """What `tickwire config` says with a service's environment and command options."""
    return show_config(*service["command"][1:], variables={
        k: str(v) for k, v in service["environment"].items()})


def test_compose_runs_an_ingest_and_gateways_on_its_redis() -> None:
    services = compose()["services"]
    assert set(services) == {"redis", "ingest", "gateway", "nginx"}
    for role in ("ingest", "gateway"):
        service = services[role]
        assert service["image"] == "tickwire" and service["command"][0] == "serve"
        assert_accepted(service["command"])
        shown = config_in(service)
        assert shown["engine"]["kind"] == "redis" and shown["engine"]["role"] == role
        assert shown["engine"]["url"] == "redis://redis:6379/0"
        assert shown["server"]["host"] == "0.0.0.0"
    assert services["ingest"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert services["ingest"]["volumes"] == ["tickwire-data:/data"]
    assert services["gateway"]["deploy"]["replicas"] >= 2
    assert "redis-server" in services["redis"]["command"]


def test_nginx_hands_on_websockets_and_the_clients_address() -> None:
    conf = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in conf
    assert "proxy_set_header Upgrade $http_upgrade;" in conf
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in compose()["services"]["nginx"]["volumes"]
    trusted = json.loads(compose()["services"]["gateway"]["environment"][
        "TICKWIRE_ACCESS_TRUSTED_PROXIES"])
    assert trusted  # the gateways believe nginx's X-Forwarded-For


def test_the_image_has_the_redis_engine() -> None:
    assert '"/build[redis]"' in (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    guide = (DEPLOY / "README.md").read_text(encoding="utf-8")
    assert "docker compose -f deploy/compose.yaml up -d --build --scale gateway=3" in guide
