"""The client commands fail fast: a server that is not there ends a command in well under a
second, with one line naming the URL (run in-process, so the time is the command's own)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.e2e.server import free_port
from tickwire.cli import app

UNDER = 1.0
"""Seconds a refused connection may take to fail a command."""


@pytest.mark.parametrize(("args", "what"), [
    (["quote", "btcusdt"], "http://{}/getQuote.php: connection refused"),
    (["categories"], "http://{}/getCategory.php: connection refused"),
    (["watch", "btcusdt"], "ws://{}/ws: cannot connect: connection refused"),
    (["record", "btcusdt", "-o", "pushes.jsonl"], "ws://{}/ws: cannot connect: "
                                                  "connection refused"),
])
def test_a_refused_server_fails_in_under_a_second(args: list[str], what: str,
                                                  tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    address = f"127.0.0.1:{free_port()}"
    began = time.monotonic()
    result = CliRunner().invoke(app, [*args, "--server", address], env={"COLUMNS": "80"})
    assert time.monotonic() - began < UNDER
    assert not (tmp_path / "pushes.jsonl").exists()
    assert result.exit_code == 1
    assert result.stderr == f"tickwire: error: cannot reach {what.format(address)}\n"
