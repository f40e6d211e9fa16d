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
    licences = pyproject()["license-files"]
    assert licences[0] == "LICENSE"
    for vendored in licences[1:]:  # what the market page ships of others, with its terms
        assert vendored.startswith("src/tickwire/gateway/static/")
        assert (ROOT / vendored).is_file()


def test_the_changelog_has_unreleased_and_the_current_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings[0] == "## Unreleased"
    assert any(h.startswith(f"## {pyproject()['version']} - ") for h in headings)


def test_the_readme_points_at_what_a_user_looks_for() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for target in ("examples/", "docs/configuration.md", "deploy/", "CHANGELOG.md",
                   "LICENSE"):
        assert f"]({target})" in readme
        assert (ROOT / target).exists()
