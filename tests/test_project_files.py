"""What a user looks for before trusting the project: a licence, a changelog."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[1]


def pyproject() -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads(
        (ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return project


def test_the_licence_is_mit_and_the_metadata_says_so() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n") and "the tickwire authors" in text
    assert pyproject()["license"] == "MIT"
    assert pyproject()["license-files"] == ["LICENSE"]
