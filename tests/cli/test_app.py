"""The `tickwire` command as a whole: its entry points, its commands, what it loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from typer.testing import CliRunner

import tickwire.cli

ROOT = Path(__file__).parents[2]


def test_the_console_script_and_python_m_reach_main() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    module, _, name = pyproject["project"]["scripts"]["tickwire"].partition(":")
    assert (module, name) == ("tickwire.cli", "main")
    result = subprocess.run([sys.executable, "-m", "tickwire", "--help"], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout and " serve " in result.stdout


def test_every_command_is_there() -> None:
    result = CliRunner().invoke(tickwire.cli.app, ["--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    for command in ("serve", "config", "quote", "kline", "categories", "symbols", "watch",
                    "record", "allow"):
        assert f" {command} " in result.output


COMMANDS = (["serve"], ["quote"], ["kline"], ["categories"], ["symbols"], ["watch"],
            ["record"], ["allow", "list"], ["allow", "add"], ["allow", "remove"])


def test_every_command_has_help_with_an_example_that_fits_80_columns() -> None:
    for command in COMMANDS:
        result = CliRunner().invoke(tickwire.cli.app, [*command, "--help"],
                                    env={"COLUMNS": "80"})
        assert result.exit_code == 0, result.output
        examples = [line.strip() for line in result.output.splitlines()
                    if line.strip().startswith("Example: ")]
        assert examples, command
        assert examples[0].startswith(f"Example: tickwire {' '.join(command)}")
        assert max(map(len, result.output.splitlines())) <= 80


def test_client_commands_state_their_timeout() -> None:
    for command in ("quote", "kline", "categories", "symbols", "watch", "record"):
        result = CliRunner().invoke(tickwire.cli.app, [command, "--help"],
                                    env={"COLUMNS": "80"})
        assert "--timeout" in result.output and "[default: 5.0]" in result.output, command


def test_the_client_commands_do_not_load_the_server() -> None:
    code = "import sys, json, tickwire.cli; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], check=True,
                                       capture_output=True, text=True).stdout)
    assert [m for m in loaded if m.startswith((
        "tickwire.gateway", "tickwire.engine", "tickwire.feeds", "sqlite3", "redis"))] == []
