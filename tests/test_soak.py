"""The soak, shortened: two minutes of the full load (1,000 WebSocket clients, 20,000
deliveries a second, HTTP beside them) with no error and descriptors and tasks steady.
The 30-minute run is `benchmarks/soak.py` (RELIABILITY.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_two_minutes_of_steady_load_have_no_error_and_nothing_growing(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--seconds", "120",
         "--sample", "5", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=360)
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    result = json.loads((tmp_path / "soak.json").read_text())
    assert not any(result["errors"].values()), result["errors"]
    steady = result["targets"]["fds and tasks steady (within 10)"]
    assert steady["met"] is True, steady
    assert len(result["samples"]) == 24
    assert set(result["slopes_per_minute"]) == {"rss_mib", "fds", "tasks", "http_p99_ms",
                                                "deliveries_per_s"}
    assert min(s["deliveries_per_s"] for s in result["samples"]) > 10_000
    assert all(s["connections"] == 1000 for s in result["samples"])
