"""The decode benchmark runs (a tiny --quick run; no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_decode_quick(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_decode.py"), "--quick",
         "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "json.loads (baseline)" in result.stdout and "tickwire Quote" in result.stdout
    written = json.loads((tmp_path / "decode-quick.json").read_text())
    assert written["messages"] == 2_000 and written["target"]["met"] is None
    assert set(written["msgs_per_s"]) >= {"json.loads (baseline)", "tickwire Quote"}
