"""How a command's work runs: errors as one line, the SDK's warnings shown once a run."""

from __future__ import annotations

import logging

import pytest
import typer

from tickwire.cli.running import run_client
from tickwire.errors import NotFound

CLIENT_LOG = logging.getLogger("tickwire.client")


async def warn(message: str) -> str:
    CLIENT_LOG.warning(message)
    CLIENT_LOG.info("not shown")
    return message


def test_warnings_print_once_however_many_commands_run(capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    handlers = list(CLIENT_LOG.handlers)
    for n in range(3):
        assert run_client(warn(f"retrying {n}")) == f"retrying {n}"
        assert capsys.readouterr().err == f"tickwire: retrying {n}\n"
    assert CLIENT_LOG.handlers == handlers and CLIENT_LOG.propagate


def test_commands_that_show_events_their_own_way_print_no_warnings(
        capsys: pytest.CaptureFixture[str]) -> None:
    run_client(warn("reconnecting"), log_warnings=False)
    run_client(warn("reconnecting"), log_warnings=False)
    assert capsys.readouterr().err == ""


async def raise_(exc: Exception) -> None:
    raise exc


@pytest.mark.parametrize(("exc", "status", "line"), [
    (NotFound("unknown code: nope"), 1, "tickwire: error: unknown code: nope"),
    (ConnectionRefusedError(111, "Connection refused"), 1,
     "tickwire: error: [Errno 111] Connection refused"),
    (ValueError("not a time: 'x'"), 2, "tickwire: not a time: 'x'"),
])
def test_errors_are_one_line_and_an_exit_status(capsys: pytest.CaptureFixture[str],
                                                exc: Exception, status: int,
                                                line: str) -> None:
    with pytest.raises(typer.Exit) as stopped:
        run_client(raise_(exc))
    assert stopped.value.exit_code == status
    assert capsys.readouterr().err == line + "\n"
