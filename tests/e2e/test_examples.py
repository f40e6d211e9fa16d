"""Every file in examples/, run as a user runs it, against a real server."""

from __future__ import annotations

import csv
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from tests.e2e.conftest import GENEROUS_LIMITS, small_config
from tests.e2e.server import Server, start_server

EXAMPLES = Path(__file__).parents[2] / "examples"
EXTRA_PRODUCTS = EXAMPLES / "extra_products.toml"
TESTED = {"README.md", "quote.py", "klines_to_csv.py", "klines_to_pandas.py", "stream.py",
          "extra_products.toml"}
"""Every file of examples/ that a test here uses (README.md: by the test of its index)."""
WAIT = 60.0
"""Seconds a test waits for a line it expects (generous: it only bounds a failure)."""


@pytest.fixture(scope="module")
def example_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The small catalogue plus the example config's products and feeds."""
    extra = EXTRA_PRODUCTS.read_text(encoding="utf-8")
    srv = start_server(tmp_path_factory.mktemp("examples"),
                       small_config(extra) + GENEROUS_LIMITS)
    yield srv
    srv.stop()


def example_env(server: Server) -> dict[str, str]:
    """The environment with the server's URL in TICKWIRE_URL, as a user would set it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKWIRE_")}
    return {**env, "TICKWIRE_URL": server.url, "PYTHONUNBUFFERED": "1"}


def run_example(name: str, *args: str, server: Server) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, str(EXAMPLES / name), *args],
                            env=example_env(server), capture_output=True, text=True,
                            timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_every_example_is_tested() -> None:
    assert {p.name for p in EXAMPLES.iterdir()} == TESTED


def test_the_index_names_every_example() -> None:
    index = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    for name in TESTED - {"README.md"}:
        assert f"`{name}`" in index


def test_quote(example_server: Server) -> None:
    result = run_example("quote.py", "btcusdt", "nodepth", server=example_server)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines if not line.startswith(" ")] == \
        ["btcusdt", "nodepth"]
    assert [line.split()[0] for line in lines if line.startswith(" ")] == ["bid", "ask"]
    assert max(len(line) for line in lines) <= 80


def test_quote_of_an_unknown_code_is_one_line(example_server: Server) -> None:
    result = run_example("quote.py", "no_such_code", server=example_server)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["quote.py: unknown code: no_such_code"]


def test_the_server_comes_from_the_command_line_too(example_server: Server) -> None:
    elsewhere = {**example_env(example_server), "TICKWIRE_URL": "http://127.0.0.1:9"}
    result = subprocess.run([sys.executable, str(EXAMPLES / "quote.py"), "ethusdt",
                             "--server", example_server.url],
                            env=elsewhere, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ethusdt ")


def test_klines_to_csv_file_and_stdout(example_server: Server, tmp_path: Path) -> None:
    out = tmp_path / "btc-1h.csv"
    result = run_example("klines_to_csv.py", "btcusdt", "--interval", "1h", "--rows", "24",
                         "--out", str(out), server=example_server)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == f"wrote 24 bars of btcusdt 1h to {out}"
    with out.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["time_utc", "open", "high", "low", "close", "volume"]
    assert len(rows) == 25 and rows[1][0] < rows[-1][0]
    for row in rows[1:]:
        low, high = float(row[3]), float(row[2])
        assert low <= float(row[1]) <= high and low <= float(row[4]) <= high

    piped = run_example("klines_to_csv.py", "ethusdt", "--rows", "3", server=example_server)
    assert piped.returncode == 0 and len(piped.stdout.splitlines()) == 4


def test_klines_to_pandas(example_server: Server, tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas", reason="the pandas extra is not installed")
    parquet = tmp_path / "coin.parquet"
    result = run_example("klines_to_pandas.py", "my_coin", "--rows", "120", "--parquet",
                         str(parquet), server=example_server)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("120 one-minute bars of my_coin, ")
    assert "sma_20" in result.stdout and "hourly bars" in result.stdout
    frame = pd.read_parquet(parquet)
    assert len(frame) == 120 and frame["sma_20"].notna().sum() == 101
    assert max(len(line) for line in result.stdout.splitlines()) <= 80


def test_the_config_with_extra_products(example_server: Server) -> None:
    result = run_example("quote.py", "my_coin", "my_index", server=example_server)
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()
            if not line.startswith(" ")] == ["my_coin", "my_index"]
    checked = subprocess.run([sys.executable, "-m", "tickwire", "config", "--config",
                              str(EXTRA_PRODUCTS), "--json"], env=example_env(example_server),
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr  # valid with the shipped catalogue too


def test_stream_stops_after_count(example_server: Server) -> None:
    result = run_example("stream.py", "btcusdt", "my_coin", "--count", "5",
                         server=example_server)
    assert result.returncode == 0, result.stderr
    codes = [line.split()[2] for line in result.stdout.splitlines()]
    assert len(codes) == 5 and set(codes) <= {"btcusdt", "my_coin"}
    assert "[connected]" in result.stderr and result.stderr.endswith("5 quotes\n")


class _Lines:
    """The merged output of a process, line by line, with a timeout on each wait."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert proc.stdout is not None
        threading.Thread(target=self._read, args=(proc.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)

    def wait_for(self, text: str) -> str:
        """The next line with `text` in it."""
        while True:
            try:
                line = self._queue.get(timeout=WAIT)
            except queue.Empty:
                raise AssertionError(f"no line with {text!r} in {WAIT} s: {self.seen}") from None
            self.seen.append(line)
            if text in line:
                return line


def test_stream_reconnects_after_a_server_restart(tmp_path: Path) -> None:
    server = start_server(tmp_path, small_config())
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / "stream.py"), "btcusdt",
                             "--count", "1000000", "--seconds", "600"],
                            env=example_env(server), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        lines = _Lines(proc)
        lines.wait_for("[connected]")
        lines.wait_for(" btcusdt ")  # a quote
        server.stop()
        lines.wait_for("[reconnecting]")
        server = start_server(tmp_path, small_config(), data_dir=server.data_dir,
                              port=server.port)
        lines.wait_for("[connected]")
        lines.wait_for(" btcusdt ")  # quotes again: subscribed again by itself
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(WAIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        server.stop()
    assert not any("Traceback" in line for line in lines.seen)
