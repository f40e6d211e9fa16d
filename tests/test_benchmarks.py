"""Every benchmark in benchmarks/ runs at tiny size (`--quick`), so that they keep working.

No timing is asserted: a quick run's figures mean nothing. Each must exit 0 and write its JSON
result with the machine, the command and its targets. Benchmarks that need wrk skip without
it (Debian package `wrk`; CI installs it); the fan-out ones build their C client with gcc, and
the fan-out benchmark installs Node's `ws` and Bun from the npm registry for its baselines,
skipping those rows with the reason when node or npm is missing (CI installs both); the
exchange feed's skips without ccxt or the real exchange data.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
NEEDS_WRK = {"bench_http.py", "bench_growth.py"}
NEEDS_WEBSOCKETS = {"bench_fanout.py", "bench_idle.py"}
NEEDS_GCC = {"bench_fanout.py", "bench_idle.py"}
NEEDS_EXCHANGE = {"bench_exchange.py"}

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("script", ["bench_ingest.py", "bench_replay.py", "bench_fanout.py",
                                    "bench_idle.py", "bench_http.py", "bench_growth.py",
                                    "bench_redis.py", "bench_exchange.py"])
def test_benchmark_runs_at_tiny_size(script: str, tmp_path: Path,
                                     request: pytest.FixtureRequest) -> None:
    if script in NEEDS_WRK and shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (Debian package `wrk`)")
    if script in NEEDS_WEBSOCKETS and (importlib.util.find_spec("websockets") is None
                                       or importlib.util.find_spec("picows") is None):
        pytest.skip("websockets or picows is not installed (the `dev` extra has them)")
    if script in NEEDS_GCC and shutil.which("gcc") is None:
        pytest.skip("gcc is not installed (Debian package `gcc`), for the C client")
    if script == "bench_redis.py" and shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian package `redis-server`)")
    if script in NEEDS_EXCHANGE:
        if importlib.util.find_spec("ccxt") is None:
            pytest.skip("ccxt is not installed (the `exchanges` extra)")
        request.getfixturevalue("shared_data")  # skips, saying why, where it is absent
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    results = list(tmp_path.glob("*.json"))
    assert len(results) == 1, proc.stdout[-2000:]
    result = json.loads(results[0].read_text())
    assert result["command"].endswith("--quick --out " + str(tmp_path))
    assert result["machine"]["cores"]
    assert result["targets"]
    assert all(t["met"] is None for t in result["targets"].values())  # quick: no verdicts
