"""How many cases the fuzzers and properties run: a short run by default (CI), the full one
with `TICKWIRE_FUZZ=full` (the commands are in RELIABILITY.md)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ_ENV = "TICKWIRE_FUZZ"
RUNS = ("short", "full")


def full_run() -> bool:
    """Whether this is the full run (`TICKWIRE_FUZZ=full`); a value that is neither is an
    error naming both, not a short run taken for a full one."""
    run = os.environ.get(FUZZ_ENV, "short")
    if run not in RUNS:
        raise pytest.UsageError(f"{FUZZ_ENV}={run!r}: one of {', '.join(RUNS)}")
    return run == "full"


def cases(short: int, full: int) -> int:
    """`full` in the full run, else `short`."""
    return full if full_run() else short


def fuzz_settings(short: int, full: int) -> Any:
    """Hypothesis settings of a fuzz test or property: its number of cases, no deadline
    (real sockets and a shared machine), no health check about slow generation."""
    return settings(max_examples=cases(short, full), deadline=None,
                    suppress_health_check=list(HealthCheck))


def run_cases(strategy: st.SearchStrategy[Any], count: int,
              check: Callable[[Any], None]) -> int:
    """`check` each of up to `count` cases drawn from `strategy` (failures shrunk as in any
    property); how many ran (fewer where the strategy has fewer distinct cases)."""
    ran = 0

    @settings(max_examples=count, deadline=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def each(case: Any) -> None:
        nonlocal ran
        ran += 1
        check(case)

    each()
    return ran


def report(what: str, **figures: object) -> None:
    """One line of figures for RELIABILITY.md (shown with `pytest -rP`)."""
    print(f"{what}: " + ", ".join(f"{name}={value}" for name, value in figures.items()))
