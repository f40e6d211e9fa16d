"""`tickwire --version` and `python -m tickwire --version`, as real processes."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import tickwire
from tickwire.cli import version

CONSOLE_SCRIPT = Path(sys.executable).with_name("tickwire")


def _version_line(command: list[str]) -> str:
    result = subprocess.run([*command, "--version"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_python_m_tickwire_prints_the_version() -> None:
    assert _version_line([sys.executable, "-m", "tickwire"]) == f"tickwire {version()}\n"


def test_the_console_script_prints_the_version() -> None:
    if not CONSOLE_SCRIPT.exists():
        pytest.skip(f"no console script at {CONSOLE_SCRIPT} (the package is not installed)")
    assert _version_line([str(CONSOLE_SCRIPT)]) == f"tickwire {version()}\n"


def test_the_version_is_the_package_s() -> None:
    assert version() == metadata.version("tickwire") == tickwire.__version__
