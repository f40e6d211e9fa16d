"""`tickwire status`: a server's state and a table of its feeds, from its `/healthz`; run
in-process against a real server, a server that answers as one starting does, and servers
that are not there or never answer."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from click.testing import Result
from rich.cells import cell_len
from rich.console import Console
from typer.testing import CliRunner

from tests.cli.test_allow import one_error_line
from tests.e2e.conftest import small_config
from tests.e2e.server import Server, free_port, http_stub, start_server
from tickwire.cli import app
from tickwire.cli.status import FeedHealth, FeedTable, age, since_cell


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("status-cli"), small_config())
    yield srv
    srv.stop()


def tickwire(*args: str, columns: int = 80) -> Result:
    return CliRunner().invoke(app, ["status", *args], env={"COLUMNS": str(columns)})


def error_line(result: Result) -> str:
    line = one_error_line(result)
    assert line.startswith("tickwire: error: ")
    return line


def fits(text: str, columns: int = 80) -> bool:
    return max(map(cell_len, text.splitlines())) <= columns


LONG_ERROR = ("ConnectionError: Cannot connect to host stream.example.com:9443 ssl:default "
              "[Connection refused]")
FEEDS = [
    {"name": "sim-0", "kind": "sim", "state": "live", "since": "2026-12-02T13:05:09.123+08:00",
     "in_state_s": 185.2, "updates": 9000, "updates_per_s": 55.04, "restarts": 0},
    {"name": "relay-upstream-shanghai-2", "kind": "relay", "state": "down",
     "since": "2026-12-02T15:00:00.000+08:00", "in_state_s": 42.0, "error": LONG_ERROR,
     "updates": 12, "updates_per_s": 0.0, "restarts": 3, "last_error": LONG_ERROR,
     "last_error_at": "2026-12-02T15:00:00.000+08:00"},
    {"name": "replay-2", "kind": "replay", "state": "finished",
     "since": "2026-11-28T09:00:00.000+08:00", "in_state_s": 4 * 86400 + 3 * 3600,
     "updates": 12477, "updates_per_s": 0.0, "restarts": 1, "last_error": "OSError: gone",
     "last_error_at": "2026-11-28T08:59:00.000+08:00"},
]


# the parts ------------------------------------------------------------------------------

@pytest.mark.parametrize(("seconds", "shown"), [
    (0, "0s"), (59.9, "59s"), (60, "1m"), (3599, "59m"), (3600 + 5 * 60, "1h05m"),
    (4 * 86400 + 3 * 3600, "4d03h"), (-1, "0s")])
def test_age(seconds: float, shown: str) -> None:
    assert age(seconds) == shown


def test_since_is_the_time_of_day_within_a_day_else_the_date() -> None:
    assert since_cell("2026-12-02T13:05:09.123+08:00", 185) == "13:05:09 (3m)"
    assert since_cell("2026-11-28T09:00:00.000+08:00", 4 * 86400) == "11-28 (4d00h)"
    assert since_cell("", 5) == "(5s)"  # from a server that does not say when
    assert since_cell("", None) == "-"


@pytest.mark.parametrize("columns", [80, 100, 200])
def test_the_feed_table_fits_its_width_cutting_names_and_errors_last(columns: int) -> None:
    feeds = [FeedHealth(**{k: v for k, v in feed.items()  # type: ignore[arg-type]
                           if k in FeedHealth.__struct_fields__}) for feed in FEEDS]
    console = Console(width=columns, force_terminal=False, color_system=None)
    with console.capture() as captured:
        console.print(FeedTable(feeds))
    lines = captured.get().splitlines()
    assert fits(captured.get(), columns)
    assert lines[0].split() == ["FEED", "KIND", "STATE", "SINCE", "UPD/S", "ERROR"]
    assert lines[1].split()[:6] == ["sim-0", "sim", "live", "13:05:09", "(3m)", "55.0"]
    assert "11-28 (4d03h)" in lines[3] and "last: OSError: gone" in lines[3]
    if columns == 80:
        assert "…" in lines[2] and "down" in lines[2] and "(42s)" in lines[2]
        assert "relay-upstream-shanghai-2" not in lines[2]  # the name cut to leave room
    else:
        assert "relay-upstream-shanghai-2" in lines[2]
    if columns == 200:
        assert LONG_ERROR in lines[2]


# a server that answers as told --------------------------------------------------------------

@pytest.fixture
def answering() -> Iterator[tuple[str, dict[str, object]]]:
    """A server whose `/healthz` answers `said["status"]` with `said["body"]` (bytes)."""
    said: dict[str, object] = {"status": 200, "body": b"{}"}

    def answer(path: str) -> tuple[int, bytes]:
        status, body = said["status"], said["body"]
        assert isinstance(status, int) and isinstance(body, bytes) and path == "/healthz"
        return status, body

    with http_stub(answer) as address:
        yield address, said


def test_a_server_still_starting_is_shown_with_its_feeds(
        answering: tuple[str, dict[str, object]]) -> None:
    address, said = answering
    starting = {"status": "starting", "feeds": [{**FEEDS[0], "state": "connecting"}],
                "products": 11, "connections": 0, "store": {"state": "ok"}}
    said.update(status=503, body=json.dumps(starting).encode())
    result = tickwire("--server", address)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"http://{address}: starting, 11 products, 0 connections"
    assert lines[2].split()[:3] == ["sim-0", "sim", "connecting"]
    with_json = tickwire("--server", address, "--json")
    assert with_json.exit_code == 0 and json.loads(with_json.stdout) == starting


def test_a_failing_store_is_named(answering: tuple[str, dict[str, object]]) -> None:
    address, said = answering
    said["body"] = json.dumps({"status": "degraded", "feeds": [], "store": {
        "state": "failing", "error": "disk I/O error"}}).encode()
    result = tickwire("--server", address)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"http://{address}: degraded; store failing: disk I/O error", "no feeds"]


@pytest.mark.parametrize(("status", "body", "says"), [
    (200, b"<html>hello</html>", "/healthz: not a tickwire health answer"),
    (200, b'{"feeds": []}', "/healthz: not a tickwire health answer"),
    (403, b'{"code":403,"msg":"not authorized: 127.0.0.1","data":null}',
     "not authorized: 127.0.0.1"),
    (404, b"nothing here", "HTTP 404: nothing here"),
])
def test_an_answer_that_is_not_a_health_answer_is_an_error(
        answering: tuple[str, dict[str, object]], status: int, body: bytes, says: str) -> None:
    address, said = answering
    said.update(status=status, body=body)
    assert says in error_line(tickwire("--server", address))


# servers that are not there ---------------------------------------------------------------

def test_a_refused_server_is_one_line_at_once() -> None:
    address = f"127.0.0.1:{free_port()}"
    began = time.monotonic()
    line = error_line(tickwire("--server", address))
    assert time.monotonic() - began < 1.0
    assert line == f"tickwire: error: cannot reach http://{address}/healthz: connection refused"


def test_a_server_that_never_answers_fails_within_the_timeout(silent_address: str) -> None:
    began = time.monotonic()
    line = error_line(tickwire("--server", silent_address, "--timeout", "0.5"))
    assert 0.4 < time.monotonic() - began < 2.0
    assert line == (f"tickwire: error: cannot reach http://{silent_address}/healthz: "
                    "no answer within 0.5 s")


# a real server ------------------------------------------------------------------------------

def test_a_real_servers_state_and_feeds(real_server: Server) -> None:
    result = tickwire("--server", real_server.url)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"{real_server.url}: ok, 11 products, 0 connections"
    assert lines[1].split() == ["FEED", "KIND", "STATE", "SINCE", "UPD/S", "ERROR"]
    name, kind, state, at, ago, rate = lines[2].split()
    assert (name, kind, state) == ("sim", "sim", "live")
    assert len(at) == 8 and ago.startswith("(") and float(rate) >= 0
    assert fits(result.stdout) and "\x1b" not in result.stdout  # not a terminal: no colour


def test_json_is_the_health_answer_as_it_came(real_server: Server) -> None:
    result = tickwire("--server", real_server.url, "--json", columns=40)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1  # one line, whatever the width
    health = json.loads(result.stdout)
    assert health["status"] == "ok" and health["feeds"][0]["name"] == "sim"
    assert {"since", "in_state_s", "updates", "updates_per_s", "restarts"} <= \
        set(health["feeds"][0])
