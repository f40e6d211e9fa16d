"""What every benchmark shares: arguments, core pinning, machine facts, CPU meters, tables,
JSON results, child processes that talk JSON lines, and a real `tickwire serve` to measure.

The benchmarks are scripts (`python benchmarks/bench_fanout.py`); this module sits beside
them and is imported by name.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
SERVER_CORE = 0
CLIENT_CORE = 1


# arguments and results ---------------------------------------------------------------------

def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true",
                   help="a tiny run that only checks the benchmark works (CI); no real figures")
    p.add_argument("--out", type=Path, default=RESULTS,
                   help=f"directory for the JSON result (default {RESULTS})")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    return p


def command_line() -> str:
    script = Path(sys.argv[0])
    with contextlib.suppress(ValueError):
        script = script.resolve().relative_to(ROOT)
    return " ".join([".venv/bin/python", str(script), *sys.argv[1:]])


def write_result(out_dir: Path, name: str, result: dict[str, Any]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    document = {"benchmark": name, "command": command_line(), "machine": machine(), **result}
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {path}")
    return path


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain text table (also printed)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = [title, "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    text = "\n".join(lines)
    print("\n" + text, flush=True)
    return text


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if value is None:
        return "-"
    return str(value)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")


# the machine -------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    versions: dict[str, str | None] = {}
    for dist in ("tickwire", "aiohttp", "uvloop", "msgspec", "websockets"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    wrk = shutil.which("wrk")
    system = platform.system()
    with contextlib.suppress(OSError):
        system = platform.freedesktop_os_release().get("PRETTY_NAME", system)
    virtual = False
    with contextlib.suppress(OSError):
        virtual = " hypervisor " in Path("/proc/cpuinfo").read_text()
    return {
        "cpu": model, "cores": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1),
        "os": system, "virtual_machine": virtual,
        "kernel": platform.release(), "python": platform.python_version(),
        "packages": versions, "taskset": shutil.which("taskset") is not None,
        "wrk": _wrk_version(wrk) if wrk else None,
    }


def _wrk_version(path: str) -> str:
    out = subprocess.run([path, "-v"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).splitlines()[0].strip() if (out.stdout or out.stderr) \
        else "wrk"


def can_pin() -> bool:
    return shutil.which("taskset") is not None and len(os.sched_getaffinity(0)) >= 2


def real_clock_env() -> dict[str, str]:
    """This environment without libfaketime, for a server that does not start under it
    (redis-server): a run under `faketime` fakes the benchmarked process's clock only."""
    return {k: v for k, v in os.environ.items()
            if k != "LD_PRELOAD" and not k.startswith("FAKETIME")}


def pinned(cmd: list[str], core: int, pin: bool = True) -> list[str]:
    """`cmd` run on one core with taskset, where taskset exists and there are two cores."""
    if pin and can_pin():
        return ["taskset", "-c", str(core), *cmd]
    return cmd


def pin_self(core: int, pin: bool = True) -> bool:
    """This process on `core`. A process started by one pinned to another core may move
    there (its inherited affinity is one core, so `can_pin` would say no)."""
    if not pin:
        return False
    try:
        os.sched_setaffinity(0, {core})
    except OSError:  # no such core here
        return False
    return True


def raise_open_files(wanted: int) -> int:
    """Raise this process's open-file limit (not the system's) to `wanted`, as far as allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(hard, wanted)))
        return wanted
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def use_uvloop() -> str:
    """Install uvloop's event loop policy (as `tickwire serve` does); the loop's name."""
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def run_async(main: Coroutine[Any, Any, Any]) -> Any:
    use_uvloop()
    return asyncio.run(main)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# CPU and memory ----------------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def core_times() -> dict[int, tuple[float, float]]:
    """Per core: (busy, total) jiffies since boot, from /proc/stat."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            name, *values = line.split()
            nums = [int(v) for v in values]
            idle = nums[3] + nums[4]
            out[int(name[3:])] = (float(sum(nums) - idle), float(sum(nums)))
    return out


class CpuMeter:
    """CPU use of some processes, and busy share of each core, over a span of wall time."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.reset()

    def reset(self) -> None:
        self._wall = time.monotonic()
        self._proc = {k: process_cpu_seconds(p) for k, p in self.pids.items()}
        self._cores = core_times()

    def read(self) -> dict[str, float]:
        """Percent of one core per process (`server_cpu`...), per core (`core0_busy`...), and
        `others`: the busy time of all cores not spent by these processes (other work on the
        machine, and kernel work on their behalf), also in percent of one core."""
        wall = max(time.monotonic() - self._wall, 1e-9)
        out = {f"{k}_cpu": 100 * (process_cpu_seconds(p) - self._proc[k]) / wall
               for k, p in self.pids.items()}
        now = core_times()
        busy_all = 0.0
        for core, (busy, total) in now.items():
            b0, t0 = self._cores.get(core, (busy, total))
            out[f"core{core}_busy"] = share = 100 * (busy - b0) / max(total - t0, 1e-9)
            busy_all += share
        out["others"] = max(0.0, busy_all - sum(out[f"{k}_cpu"] for k in self.pids))
        return out


def wait_for_quiet(limit: float = 10.0, patience: float = 120.0) -> float:
    """Wait (up to `patience` s) for a second in which the machine's cores are on average
    at most `limit` % busy; returns the last such reading (other users of a shared machine
    would skew every figure)."""
    deadline = time.monotonic() + patience
    while True:
        meter = CpuMeter({})
        time.sleep(1.0)
        reading = meter.read()
        busy = reading["others"] / max(len(core_times()), 1)
        if busy <= limit or time.monotonic() >= deadline:
            if busy > limit:
                print(f"warning: the machine is {busy:.0f}% busy with other work; "
                      "figures will be low", flush=True)
            return busy
        print(f"waiting for a quiet machine ({busy:.0f}% busy)...", flush=True)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return float(sorted_values[index])


# child processes speaking JSON lines -------------------------------------------------------

class Child:
    """A benchmark role in its own process: commands go in on stdin, one JSON object a line,
    and answers come back on stdout the same way (anything else on stdout is passed through)."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}, cwd=ROOT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{self.name} exited with {self.proc.wait()}")
            if line.startswith("{"):
                message: dict[str, Any] = json.loads(line)
                if "error" in message:
                    raise RuntimeError(f"{self.name}: {message['error']}")
                return message
            print(f"[{self.name}] {line}", end="", flush=True)

    def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        self.send(message)
        return self.receive()

    def close(self, timeout: float = 10) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(BrokenPipeError, OSError):
                self.send({"cmd": "exit"})
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def reply(message: dict[str, Any]) -> None:
    """Answer the parent (see `Child`)."""
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def commands() -> asyncio.StreamReader:
    """This child's stdin as an asyncio stream of JSON-line commands."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def serve_commands(handler: Callable[[dict[str, Any]], Coroutine[Any, Any, Any]]) -> None:
    """Answer each command with what `handler` returns, until `exit` or end of input."""
    reader = await commands()
    while True:
        line = await reader.readline()
        if not line:
            return
        message = json.loads(line)
        if message.get("cmd") == "exit":
            return
        try:
            answer = await handler(message)
        except Exception as exc:
            reply({"error": f"{type(exc).__name__}: {exc}"})
            raise
        reply(answer if isinstance(answer, dict) else {"ok": True})


# wrk ---------------------------------------------------------------------------------------

def have_wrk() -> bool:
    return shutil.which("wrk") is not None


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}


def _ms(text: str) -> float:
    for unit in ("us", "ms", "s", "m", "h"):
        if text.endswith(unit) and text[:-len(unit)].replace(".", "", 1).isdigit():
            return float(text[:-len(unit)]) * _UNITS[unit]
    raise ValueError(f"not a wrk duration: {text!r}")


def wrk(url: str, connections: int, seconds: float, core: int = CLIENT_CORE, pin: bool = True,
        script: Path | None = None) -> dict[str, Any]:
    """Run wrk (one thread, pinned to `core`) against `url`; requests/s, latency percentiles
    in ms, and any errors it reports."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
           "--timeout", "10s"]
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run(pinned([*cmd, url], core, pin), capture_output=True, text=True,
                         check=True).stdout
    result: dict[str, Any] = {"connections": connections, "seconds": seconds, "errors": 0}
    in_distribution = False
    for line in out.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "Latency" and len(words) >= 4 and not in_distribution:
            result["avg_ms"], result["max_ms"] = _ms(words[1]), _ms(words[3])
        elif line.strip() == "Latency Distribution":
            in_distribution = True
        elif in_distribution and words[0].endswith("%") and len(words) == 2:
            result[f"p{words[0][:-1]}_ms"] = _ms(words[1])
        elif words[0] == "Requests/sec:":
            result["rps"] = float(words[1])
        elif "requests in" in line:
            result["requests"] = int(words[0])
        elif words[0] == "Non-2xx":
            result["errors"] += int(words[-1])
        elif words[0] == "Socket" and words[1] == "errors:":
            result["errors"] += sum(int(w.rstrip(",")) for w in words[3::2])
    if "rps" not in result:
        raise RuntimeError(f"could not read wrk's output:\n{out}")
    return result


# a real tickwire server --------------------------------------------------------------------

GENEROUS_LIMITS = """
[limits]
quote_per_code = 1000000000
kline_per_code = 1000000000
category = 1000000000
symbols = 1000000000
"""


@dataclass
class TickwireServer:
    proc: subprocess.Popen[bytes]
    port: int
    workdir: Path
    started: float
    ready_after: float
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_tickwire(workdir: Path, extra: str = "", data_dir: Path | None = None,
                   core: int | None = SERVER_CORE, pin: bool = True,
                   ready_timeout: float = 300, open_files: int = 0) -> TickwireServer:
    """`tickwire serve` exactly as a user runs it (uvloop included), on a free port, pinned
    to `core`; returns once /healthz answers 200, with the time that took."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    data_dir = data_dir or workdir / "data"
    config = workdir / f"tickwire-{port}.toml"
    config.write_text(f'[server]\nhost = "127.0.0.1"\nport = {port}\ndata_dir = "{data_dir}"\n'
                      f'log_format = "json"\n{extra}\n', encoding="utf-8")
    log_path = workdir / f"server-{port}.log"
    cmd = [sys.executable, "-m", "tickwire", "serve", "--config", str(config)]
    if open_files:
        cmd = [sys.executable, str(HERE / "benchlib.py"), "exec-with-open-files",
               str(open_files), *cmd]
    if core is not None:
        cmd = pinned(cmd, core, pin)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKWIRE_")}
    with log_path.open("ab") as log:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}/healthz"
    deadline = started + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tickwire exited with {proc.returncode}:\n"
                               f"{log_path.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    ready = time.monotonic() - started
                    return TickwireServer(proc, port, workdir, started, ready, log_path)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.01)
    proc.kill()
    raise RuntimeError(f"tickwire not ready after {ready_timeout} s")


def round_the_clock_codes() -> list[str]:
    """The shipped catalogue's products that trade round the clock (their simulator runs
    whatever the hour)."""
    from tickwire.catalogue import load_catalogue

    return [p.code for p in load_catalogue(None).products.values() if p.hours == "24/7"]


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def get_bytes(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        body: bytes = resp.read()
        return body


@contextlib.contextmanager
def stopping(*things: Any) -> Iterator[None]:
    """Stop servers and children however the block ends."""
    try:
        yield
    finally:
        for thing in things:
            with contextlib.suppress(Exception):
                (thing.close if hasattr(thing, "close") else thing.stop)()


if __name__ == "__main__" and sys.argv[1:2] == ["exec-with-open-files"]:
    # `benchlib.py exec-with-open-files N cmd...`: raise the open-file limit of this process
    # only, then become `cmd` (the limit is inherited; the user's system is not touched).
    raise_open_files(int(sys.argv[2]))
    os.execv(sys.argv[3], sys.argv[3:])


async def serve_aiohttp(app: Any) -> int:
    """Run an aiohttp app (a baseline) on a free loopback port; the port."""
    from aiohttp import web

    return await serve_runner(web.AppRunner(app, access_log=None, handle_signals=False))


async def serve_runner(runner: Any) -> int:
    """Set up an aiohttp app runner and serve it on a free loopback port; the port."""
    from aiohttp import web

    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    server = site._server
    assert server is not None
    return int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
