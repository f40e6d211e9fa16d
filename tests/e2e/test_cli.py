"""Every client command of `tickwire`, run as a user runs it, against a real server."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.cells import cell_len

from tests.e2e.conftest import GENEROUS_LIMITS, small_config
from tests.e2e.server import Server, free_port, http_stub, start_server


@pytest.fixture(scope="module")
def cli_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("cli"), small_config(GENEROUS_LIMITS))
    yield srv
    srv.stop()


def tickwire(*args: str, server: Server | None = None, timeout: float = 60,
             columns: int | None = 200) -> subprocess.CompletedProcess[str]:
    """Run the command with its output to a pipe, `COLUMNS` set (None: unset)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TICKWIRE_") and k != "COLUMNS"}
    if columns is not None:
        env["COLUMNS"] = str(columns)
    extra = ["--server", server.url] if server else []
    return subprocess.run([sys.executable, "-m", "tickwire", *args, *extra], env=env,
                          capture_output=True, text=True, timeout=timeout)


CURSOR_UP = re.compile(r"\x1b\[[0-9]*A")
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def in_terminal(*args: str, columns: int = 80, timeout: float = 60) -> tuple[int, str]:
    """Run the command on a pseudo-terminal `columns` wide: its exit status and what it
    showed, escape codes taken out (a move up, to draw again, as a new line)."""
    main_fd, term_fd = pty.openpty()
    fcntl.ioctl(term_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TICKWIRE_") and k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen([sys.executable, "-m", "tickwire", *args], stdin=term_fd,
                            stdout=term_fd, stderr=term_fd, env={**env, "TERM": "xterm"})
    os.close(term_fd)
    shown = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([main_fd], [], [], 0.2)[0]:
                try:
                    chunk = os.read(main_fd, 65536)
                except OSError:  # the terminal's other end closed
                    break
                if not chunk:
                    break
                shown += chunk
            elif proc.poll() is not None:
                break
        status = proc.wait(5)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main_fd)
    text = CURSOR_UP.sub("\n", shown.decode(errors="replace"))
    return status, ESCAPES.sub("", text).replace("\r", "")


@pytest.fixture
def silent_url(silent_address: str) -> str:
    """A server that accepts connections and never answers, as a URL without a scheme."""
    return silent_address


def table_rows(text: str) -> list[list[str]]:
    """The cells of a rich table's body rows (lines framed by │)."""
    return [[c.strip() for c in line.strip().strip("│").split("│")]
            for line in text.splitlines() if line.startswith("│")]


def one_error_line(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tickwire: "), result.stderr
    return lines[0]


def test_quote_table(cli_server: Server) -> None:
    result = tickwire("quote", "btcusdt", "fx_seurusd", server=cli_server)
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[1]
    for name in ("Code", "Name", "Price", "Change", "Change %", "Bid", "Ask", "High", "Low",
                 "Volume", "Time"):
        assert name in header
    rows = table_rows(result.stdout)
    assert [r[:2] for r in rows] == [["btcusdt", "比特币"], ["fx_seurusd", "欧元美元"]]
    assert float(rows[0][2]) > 0 and rows[0][4].endswith("%") and len(rows[0][10]) == 19


def test_quote_shows_names_at_80_columns(cli_server: Server) -> None:
    result = tickwire("quote", "btcusdt", "ethusdt", server=cli_server, columns=80)
    assert result.returncode == 0, result.stderr
    header = [c.strip() for c in result.stdout.splitlines()[1].strip("┃").split("┃")]
    assert header[:4] == ["Code", "Name", "Price", "Change"]
    rows = table_rows(result.stdout)
    assert [r[:2] for r in rows] == [["btcusdt", "比特币"], ["ethusdt", "以太坊"]]
    assert all(float(r[2]) > 0 for r in rows)


def test_tables_fit_80_columns_and_come_whole_down_a_pipe(cli_server: Server) -> None:
    for args in (["quote", "btcusdt", "fx_seurusd", "nf_AU0"], ["kline", "btcusdt", "-n", "3"],
                 ["symbols", "-c", "4"], ["watch", "btcusdt", "fx_seurusd", "--duration", "1"],
                 ["--help"], ["kline", "--help"]):
        narrow = tickwire(*args, server=None if "--help" in args else cli_server,
                          columns=80)
        assert narrow.returncode == 0, narrow.stderr
        assert max(map(cell_len, narrow.stdout.splitlines())) <= 80, narrow.stdout
        assert "…" not in narrow.stdout
    piped = tickwire("quote", "btcusdt", server=cli_server, columns=None)
    assert [c.strip() for c in piped.stdout.splitlines()[1].strip("┃").split("┃")] == [
        "Code", "Name", "Price", "Change", "Change %", "Bid", "Ask", "High", "Low", "Volume",
        "Time"]


@pytest.fixture
def lists_broken(cli_server: Server) -> Iterator[str]:
    """The URL of a relay to `cli_server` that answers every symbol-list request with a
    500 and passes the rest through."""

    def relay(path: str) -> tuple[int, bytes]:
        if path.startswith(("/getCategory.php", "/getSymbolList.php")):
            return 500, b'{"code":500,"msg":"broken","data":null}'
        with urllib.request.urlopen(cli_server.url + path, timeout=10) as answer:
            return 200, answer.read()

    with http_stub(relay) as address:
        yield f"http://{address}"


def test_quote_without_names_shows_empty_names(lists_broken: str) -> None:
    result = tickwire("quote", "btcusdt", "--server", lists_broken)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    rows = table_rows(result.stdout)
    assert [r[:2] for r in rows] == [["btcusdt", ""]] and float(rows[0][2]) > 0


def test_quote_json_and_an_unknown_code(cli_server: Server) -> None:
    result = tickwire("quote", "hf_GC", "nope", "--json", server=cli_server)
    bodies = json.loads(result.stdout)
    assert [b["StockCode"] for b in bodies] == ["hf_GC"]
    assert one_error_line(result) == "tickwire: error: unknown code: nope"
    table = tickwire("quote", "btcusdt", "nope", "nada", server=cli_server)
    assert [r[0] for r in table_rows(table.stdout)] == ["btcusdt"]
    assert one_error_line(table) == "tickwire: error: unknown codes: nope, nada"


def test_quote_of_an_unknown_code_is_one_error_line(cli_server: Server) -> None:
    line = one_error_line(tickwire("quote", "nope", server=cli_server))
    assert line == "tickwire: error: unknown code: nope"


def test_no_server_is_one_error_line_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (["categories"], ["quote", "btcusdt"]):
        line = one_error_line(tickwire(*args, "--server", url))
        assert line.startswith(f"tickwire: error: cannot reach {url}/") and \
            line.endswith(": connection refused")
    for args in (["watch", "btcusdt"], ["record", "btcusdt", "-o", "x.jsonl"]):
        line = one_error_line(tickwire(*args, "--server", url))
        assert line == (f"tickwire: error: cannot reach {url.replace('http', 'ws')}/ws: "
                        "cannot connect: connection refused")


def test_a_server_that_never_answers_fails_within_the_timeout(silent_url: str,
                                                                tmp_path: Path) -> None:
    for args, url in ((["quote", "btcusdt"], f"http://{silent_url}/getQuote.php"),
                      (["kline", "btcusdt"], f"http://{silent_url}/redis.php"),
                      (["watch", "btcusdt"], f"ws://{silent_url}/ws"),
                      (["record", "btcusdt", "-o", str(tmp_path / "x.jsonl")],
                       f"ws://{silent_url}/ws")):
        result = tickwire(*args, "--server", silent_url, "--timeout", "1", timeout=30)
        line = one_error_line(result)
        assert line == f"tickwire: error: cannot reach {url}: no answer within 1 s"
    assert not (tmp_path / "x.jsonl").exists()


def test_the_server_url_may_leave_out_http(cli_server: Server) -> None:
    bare = cli_server.url.removeprefix("http://")
    result = tickwire("quote", "btcusdt", "--server", bare)
    assert result.returncode == 0 and table_rows(result.stdout)[0][0] == "btcusdt"
    line = one_error_line(tickwire("quote", "btcusdt", "--server", "ftp://" + bare), 2)
    assert line == f"tickwire: not an http:// or https:// URL: 'ftp://{bare}'"


def test_kline_table(cli_server: Server) -> None:
    result = tickwire("kline", "btcusdt", "--interval", "5m", "--rows", "7",
                      server=cli_server)
    assert result.returncode == 0, result.stderr
    assert "btcusdt 5m: 7 bars, oldest first" in result.stdout
    rows = table_rows(result.stdout)
    assert len(rows) == 7 and rows == sorted(rows)  # times ascend
    assert all(row[0].endswith((":00:00", ":05:00", ":10:00", ":15:00", ":20:00", ":25:00",
                                ":30:00", ":35:00", ":40:00", ":45:00", ":50:00", ":55:00"))
               for row in rows)


def test_kline_export_csv_and_json(cli_server: Server, tmp_path: Path) -> None:
    out = tmp_path / "bars.csv"
    result = tickwire("kline", "btcusdt", "--rows", "100", "--out", str(out),
                      server=cli_server)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("wrote 100 bars (")
    with out.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["open_ms", "time", "open", "high", "low", "close", "volume"]
    stamps = [int(r[0]) for r in rows[1:]]
    assert len(stamps) == 100 and stamps == sorted(stamps)

    end = stamps[50]
    out_json = tmp_path / "bars.json"
    result = tickwire("kline", "btcusdt", "--rows", "10", "--end", str(end), "--out",
                      str(out_json), server=cli_server)
    assert result.returncode == 0, result.stderr
    bars = json.loads(out_json.read_bytes())
    assert len(bars) == 10 and bars[-1]["open_ms"] == end
    assert set(bars[0]) == {"open_ms", "time", "open", "high", "low", "close", "volume"}


def test_kline_long_history_export(cli_server: Server, tmp_path: Path) -> None:
    out = tmp_path / "hours.csv"
    result = tickwire("kline", "btcusdt", "-i", "1m", "--rows", "1000", "-o", str(out),
                      server=cli_server)
    assert result.returncode == 0, result.stderr
    count = len(out.read_text().splitlines()) - 1
    assert 600 <= count <= 602  # all the history there is (the fill's 600 and the live bars)
    assert result.stdout.startswith(f"wrote {count} bars")


def test_kline_parquet(cli_server: Server, tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    out = tmp_path / "bars.parquet"
    result = tickwire("kline", "ethusdt", "-i", "1h", "--start", "2000-01-01", "-o", str(out),
                      server=cli_server)
    assert result.returncode == 0, result.stderr
    frame = pd.read_parquet(out)
    assert len(frame) >= 300 and list(frame.columns)[:2] == ["open_ms", "bar_time"]


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["--out", "bars.txt"], 2, "must end in .csv, .json or .parquet"),
    (["--end", "yesterday"], 2, "not a time: 'yesterday'"),
    (["--interval", "2m"], 1, "bad parameter time"),
])
def test_kline_errors_are_one_line(cli_server: Server, args: list[str], code: int,
                                   needle: str) -> None:
    line = one_error_line(tickwire("kline", "btcusdt", *args, server=cli_server), code)
    assert needle in line


def test_categories(cli_server: Server) -> None:
    result = tickwire("categories", server=cli_server)
    assert result.returncode == 0, result.stderr
    assert table_rows(result.stdout) == [["1", "外汇"], ["2", "国际期货"], ["3", "国内期货"],
                                         ["4", "数字货币"], ["7", "国际股指期货"]]


def test_symbols_page_and_all(cli_server: Server) -> None:
    result = tickwire("symbols", "--category", "4", "--page-size", "2", server=cli_server)
    assert result.returncode == 0, result.stderr
    assert table_rows(result.stdout) == [["btcusdt", "比特币"], ["ethusdt", "以太坊"]]
    assert "page 1 of 2, 3 symbols in all" in result.stdout
    every = tickwire("symbols", "--category", "4", "--all", "--json", server=cli_server)
    assert [s["code"] for s in json.loads(every.stdout)] == ["btcusdt", "ethusdt", "xrpusdt"]
    line = one_error_line(tickwire("symbols", "--category", "99", server=cli_server))
    assert line == "tickwire: error: unknown category: 99"


def test_watch_on_an_80_column_terminal_shows_a_live_table(cli_server: Server) -> None:
    # the names take about 1.5 s (five symbol-list requests at two a second): 8 s leaves a
    # machine five times slower than usual room to show them
    status, shown = in_terminal("watch", "btcusdt", "ethusdt", "--duration", "8",
                                "--server", cli_server.url)
    assert status == 0, shown
    lines = shown.splitlines()
    assert max(map(cell_len, lines)) <= 80 and "…" not in shown
    rows = table_rows(shown)
    assert {r[0] for r in rows} == {"btcusdt", "ethusdt"}
    assert all(float(r[2]) > 0 for r in rows if r[2] != "-")
    assert any(r[0] == "btcusdt" and r[2] != "-" for r in rows)
    assert {r[1] for r in rows} <= {"", "比特币", "以太坊"}
    assert all(r[1] for r in rows[-2:])  # the last frame: the names came
    assert lines[-1].startswith("connected") and "updates" in lines[-1]


def test_watch_through_a_pipe_prints_a_line_per_update(cli_server: Server) -> None:
    result = tickwire("watch", "btcusdt", "ethusdt", "--duration", "1.5", server=cli_server)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) >= 3
    for line in lines:
        day, clock, code, price, change, percent = line.split()
        assert len(f"{day} {clock}") == 19 and code in ("btcusdt", "ethusdt")
        assert float(price) > 0 and float(change) == float(change)
        assert percent.endswith("%")
    as_json = tickwire("watch", "xrpusdt", "--json", "--duration", "1", server=cli_server)
    bodies = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert bodies and all(b["StockCode"] == "xrpusdt" and b["Price"] > 0 for b in bodies)


def test_watch_ends_quietly_when_its_reader_goes(cli_server: Server) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKWIRE_")}
    with subprocess.Popen([sys.executable, "-m", "tickwire", "watch", "btcusdt", "--server",
                           cli_server.url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=env) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert " btcusdt " in proc.stdout.readline().decode()
        proc.stdout.close()  # as `| head -1` does
        assert proc.wait(30) == 0
        assert proc.stderr.read() == b""


def test_an_unknown_code_stops_watch_and_record(cli_server: Server, tmp_path: Path) -> None:
    for args in (["watch", "nosuch"], ["watch", "btcusdt", "nosuch", "--duration", "5"],
                 ["record", "nosuch", "-o", str(tmp_path / "x.jsonl")]):
        line = one_error_line(tickwire(*args, server=cli_server, timeout=30))
        assert line == "tickwire: error: unknown code: nosuch"
    assert not (tmp_path / "x.jsonl").exists()


def test_record_writes_every_push_as_a_body_per_line(cli_server: Server,
                                                      tmp_path: Path) -> None:
    out = tmp_path / "pushes.jsonl"
    result = tickwire("record", "btcusdt", "ethusdt", "--out", str(out), "--duration", "1",
                      server=cli_server)
    assert result.returncode == 0, result.stderr
    bodies = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(bodies) >= 5 and {b["StockCode"] for b in bodies} == {"btcusdt", "ethusdt"}
    assert list(bodies[0])[:2] == ["StockCode", "Price"] and "Depth" in bodies[0]
    assert f"recorded {len(bodies)} pushes of 2 codes to {out}" in result.stderr

    counted = tmp_path / "five.jsonl"
    result = tickwire("record", "xrpusdt", "-o", str(counted), "--count", "5",
                      server=cli_server)
    assert result.returncode == 0 and len(counted.read_text().splitlines()) == 5
