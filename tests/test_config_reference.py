"""docs/configuration.md is what the config code says: every key, its default and variable."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import msgspec
import pytest

from tickwire import config_reference
from tickwire.config import Config, env_var

ROOT = Path(__file__).parents[1]
REFERENCE = ROOT / "docs" / "configuration.md"
REGENERATE = "python -m tickwire.config_reference > docs/configuration.md"


def test_the_committed_reference_is_the_generated_one() -> None:
    assert REFERENCE.read_text(encoding="utf-8") == config_reference.reference(), (
        f"docs/configuration.md is out of date with the config code: run `{REGENERATE}`")


def test_python_m_writes_the_reference() -> None:
    result = subprocess.run([sys.executable, "-m", "tickwire.config_reference"],
                            capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout == config_reference.reference()


def test_every_key_default_and_variable_is_in_it() -> None:
    text = config_reference.reference()
    for section in ("server", "access", "limits", "websocket", "engine", "record"):
        assert f"## `[{section}]`" in text
        struct = getattr(Config(), section)
        for field in msgspec.structs.fields(struct):
            default = msgspec.to_builtins(getattr(struct, field.name))
            row = next(line for line in text.splitlines()
                       if line.startswith(f"| `{field.name}` |")
                       and f"`{env_var(section, field.name)}`" in line)
            shown = row.split(" | ")[2].strip("`")  # the default, as TOML
            assert tomllib.loads(f"v = {shown}")["v"] == default, row
    assert "## `[[feeds]]`" in text and '### `kind = "sim"`' in text
    assert "## `[[products]]`" in text and "| `code` | string | required |" in text


class _Undocumented(msgspec.Struct):
    documented: int = 1
    """Says what it is."""
    bare: int = 2


def test_a_key_without_a_docstring_fails_naming_it() -> None:
    with pytest.raises(ValueError, match=r"server\.bare: no docstring"):
        config_reference.key_rows(_Undocumented, "server")


def test_a_type_without_a_name_fails() -> None:
    with pytest.raises(TypeError, match="no name for the type"):
        config_reference.type_name(dict[str, int])


def test_the_readme_links_the_reference() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/configuration.md)" in readme
