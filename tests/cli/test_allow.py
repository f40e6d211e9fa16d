"""`tickwire allow --server`: the admin API through the SDK's HTTP layer, run in-process
against real servers; every failure is one line on stderr and exit status 1."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from tests.e2e.server import ADMIN_TOKEN, Server, free_port, start_admin_server
from tickwire.cli import allow, app

TOKEN = ADMIN_TOKEN


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_admin_server(tmp_path_factory.mktemp("allow-cli"))
    yield srv
    srv.stop()


def tickwire(*args: str) -> Result:
    return CliRunner().invoke(app, ["allow", *args], env={"COLUMNS": "200"})


def one_error_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tickwire: "), result.stderr
    return lines[0]


def test_add_list_remove(admin_server: Server) -> None:
    server = ["--server", admin_server.url, "--token", TOKEN]
    added = tickwire("add", "10.1.2.0/24", "--note", "office", *server)
    assert added.exit_code == 0, added.output
    assert added.stdout == "allowed 10.1.2.0/24\n"
    listed = tickwire("list", *server)
    assert listed.exit_code == 0, listed.output
    rows = [line for line in listed.stdout.splitlines() if "/" in line]
    assert "127.0.0.1/32" in rows[0] and "config" in rows[0]
    assert "10.1.2.0/24" in rows[1] and "admin" in rows[1] and "office" in rows[1]
    removed = tickwire("remove", "10.1.2.0/24", *server)
    assert removed.exit_code == 0 and removed.stdout == "removed 10.1.2.0/24\n"
    again = one_error_line(tickwire("remove", "10.1.2.0/24", *server))
    assert again == "tickwire: error: not on the allow-list: 10.1.2.0/24"


def test_the_token_is_needed_and_checked(admin_server: Server) -> None:
    line = one_error_line(tickwire("list", "--server", admin_server.url))
    assert line == "tickwire: --token (or TICKWIRE_ACCESS_ADMIN_TOKEN) is needed with --server"
    line = one_error_line(tickwire("list", "--server", admin_server.url, "--token", "wrong"))
    assert line == "tickwire: error: missing or wrong admin token (Authorization: Bearer ...)"


def test_a_config_entry_is_not_removed_at_run_time(admin_server: Server) -> None:
    line = one_error_line(tickwire("remove", "127.0.0.1", "--server", admin_server.url,
                                   "--token", TOKEN))
    assert line == ("tickwire: error: 127.0.0.1/32 comes from the config file; "
                    "remove it there")


def test_no_server_there() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    line = one_error_line(tickwire("list", "--server", url, "--token", TOKEN))
    assert line == f"tickwire: error: cannot reach {url}/admin/allow: connection refused"


def test_a_server_that_never_answers_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allow, "ADMIN_TIMEOUT", 0.2)
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        line = one_error_line(tickwire("add", "10.0.0.1", "--server", url, "--token", TOKEN))
    assert line == f"tickwire: error: cannot reach {url}/admin/allow: no answer within 0.2 s"


def test_a_data_dir_that_is_not_there(tmp_path: Path) -> None:
    line = one_error_line(tickwire("list", "--data-dir", str(tmp_path / "nowhere")))
    assert line == f"tickwire: no data dir at {tmp_path / 'nowhere'}"


def test_a_gateways_config_points_elsewhere(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('[engine]\nkind = "redis"\nrole = "gateway"\n', encoding="utf-8")
    line = one_error_line(tickwire("add", "10.0.0.1", "--config", str(config)))
    assert line == ("tickwire: on a gateway use --server URL --token T (or the ingest's "
                    "--data-dir)")
