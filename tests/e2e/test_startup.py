"""Start-up that tells the truth: one server per data dir, a warning when only this machine
may connect to a server listening beyond it, log times in one form."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import small_config
from tests.e2e.server import free_port, start_server, write_config


def serve(workdir: Path, data_dir: Path, extra: str = "", timeout: float = 60
          ) -> subprocess.CompletedProcess[str]:
    config = workdir / "second.toml"
    write_config(config, free_port(), data_dir, small_config(extra))
    return subprocess.run([sys.executable, "-m", "tickwire", "serve", "--config", str(config)],
                          capture_output=True, text=True, timeout=timeout)


def test_a_second_server_on_one_data_dir_exits_naming_the_first(tmp_path: Path) -> None:
    first = start_server(tmp_path / "first", small_config())
    try:
        second = serve(tmp_path, first.data_dir)
        assert second.returncode != 0
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert str(first.data_dir) in lines[0] and f"pid {first.proc.pid}" in lines[0]
        assert f":{first.port}" in lines[0]
    finally:
        first.stop()


def test_the_data_dir_is_free_again_after_kill_9(tmp_path: Path) -> None:
    first = start_server(tmp_path / "first", small_config())
    first.stop(signal.SIGKILL)
    again = start_server(tmp_path / "again", small_config(), data_dir=first.data_dir)
    again.stop()


def test_listening_on_every_address_with_a_loopback_allow_list_warns(tmp_path: Path) -> None:
    server = start_server(tmp_path, small_config(), host="0.0.0.0")
    server.stop()
    entries = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    warnings = [e for e in entries if e["level"] == "warning"]
    assert any("tickwire allow add" in e["msg"] and "0.0.0.0" in e["msg"] for e in warnings)
    # every line's time in one form: ISO 8601 with the offset of the service time zone
    assert entries and all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+08:00",
                                        e["ts"]) for e in entries)
