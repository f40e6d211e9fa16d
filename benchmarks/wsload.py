"""The WebSocket load generator: many client connections in one process, on bare sockets.

Each client is an asyncio protocol (uvloop) that does the handshake, sends one
`{"Key":"a,b,..."}`, answers protocol pings, and reads every pushed frame. A push whose body
carries the benchmark's fields `T` (hand-over time, CLOCK_MONOTONIC ns, the same clock in
every process of the machine) and `N` (the product's update number) gives a latency sample;
bodies without them (a real server's simulator) are counted only.

Two ways to read a push (`check_every` of the `reset` command):

- 1, full: every message is decoded whole with msgspec (`Push`), and `N` is checked per
  product and connection, so a missed, repeated or reordered update is seen;
- N > 1, fast: the frame is checked to be a push and `T` is read from its text; one message
  in N is decoded whole (a malformed one is counted as invalid). Missed updates show as fewer
  messages received than the server delivered. Decoding 1.3 KB of JSON costs about 2 us here,
  so a single core of full decoding tops out near 300,000 messages a second; the fast way
  lets the generator outrun the servers it measures.

No WebSocket library sits in between. The fan-out benchmark reports the generator's CPU at
every step, so a run where it, not the server, was the limit shows as such.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import time
from typing import Any

import msgspec

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Body(msgspec.Struct):
    StockCode: str
    T: int = 0
    N: int = -1


class Push(msgspec.Struct):
    body: Body


_decode = msgspec.json.Decoder(Push).decode
_PUSH = b'{"body":{"StockCode":"'
_now = time.monotonic_ns


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """A client frame (clients must mask what they send)."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        header = bytes((0x80 | opcode, 0x80 | size))
    elif size < 65_536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
    key = int.from_bytes((mask * (size // 4 + 1))[:size], "big")
    body = (int.from_bytes(payload, "big") ^ key).to_bytes(size, "big") if size else b""
    return header + mask + body


class Stats:
    """Counters over all clients of one load generator, reset per measuring window."""

    def __init__(self) -> None:
        self.connected = 0
        self.closed = 0
        self.close_codes: dict[int, int] = {}
        self.reset()

    def reset(self, check_every: int = 1) -> None:
        self.check_every = max(1, check_every)
        """Decode every this many pushes whole with msgspec (1: all of them)."""
        self.checked_in = 0
        self.decoded = 0
        self.invalid = 0
        self.received = 0
        self.other = 0
        self.missed = 0
        self.reordered = 0
        self.latencies: list[int] = []


class Client(asyncio.Protocol):
    def __init__(self, stats: Stats, key_message: bytes, host: str, port: int, path: str,
                 opened: asyncio.Future[None]) -> None:
        self.stats = stats
        self._key_message = key_message
        self._request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                         "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                         f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n").encode()
        self._opened = opened
        self._open = False
        self._buffer = b""
        self._last: dict[str, int] = {}
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self._request)  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        if self._open:
            self.stats.closed += 1
        elif not self._opened.done():
            self._opened.set_exception(exc or ConnectionError("closed during the handshake"))

    def data_received(self, data: bytes) -> None:
        if self._buffer:
            data = self._buffer + data
            self._buffer = b""
        if not self._open:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self._buffer = data
                return
            status = data[:data.find(b"\r\n")]
            if b" 101 " not in status + b" ":
                self._opened.set_exception(ConnectionError(data[:200].decode(errors="replace")))
                return
            self._open = True
            self.stats.connected += 1
            assert self.transport is not None
            self.transport.write(masked_frame(0x1, self._key_message))
            self._opened.set_result(None)
            data = data[end + 4:]
        self._frames(data)

    def _frames(self, data: bytes) -> None:
        size_all = len(data)
        pos = 0
        stamps: list[int] = []
        received = 0
        stats = self.stats
        last = self._last
        check_every = stats.check_every
        checked = stats.checked_in
        while size_all - pos >= 2:
            size = data[pos + 1] & 0x7F
            if size < 126:
                start = pos + 2
            elif size == 126:
                if size_all - pos < 4:
                    break
                size = int.from_bytes(data[pos + 2:pos + 4], "big")
                start = pos + 4
            else:
                if size_all - pos < 10:
                    break
                size = int.from_bytes(data[pos + 2:pos + 10], "big")
                start = pos + 10
            end = start + size
            if end > size_all:
                break
            opcode = data[pos] & 0x0F
            pos = end
            if opcode == 0x1:
                if check_every == 1:  # every message decoded whole, and its number checked
                    try:
                        body = _decode(memoryview(data)[start:end]).body
                    except msgspec.DecodeError:  # not a push: an error or pong message
                        stats.other += 1
                        continue
                    received += 1
                    stats.decoded += 1
                    seq = body.N
                    if seq >= 0:
                        stamps.append(body.T)
                        previous = last.get(body.StockCode)
                        if previous is not None and seq != previous + 1:
                            if seq > previous + 1:
                                stats.missed += seq - previous - 1
                            else:
                                stats.reordered += 1
                        last[body.StockCode] = seq
                    continue
                if not data.startswith(_PUSH, start):
                    stats.other += 1
                    continue
                received += 1
                checked += 1
                if checked == check_every:  # one in `check_every` decoded whole
                    checked = 0
                    try:
                        _decode(memoryview(data)[start:end])
                        stats.decoded += 1
                    except msgspec.DecodeError:
                        stats.invalid += 1
                t_at = data.rfind(b',"T":', start, end)
                if t_at >= 0:
                    stamps.append(int(data[t_at + 5:data.find(b',"N":', t_at, end)]))
            elif opcode == 0x9 and self.transport is not None:
                self.transport.write(masked_frame(0xA, data[start:end]))
            elif opcode == 0x8:
                code_num = int.from_bytes(data[start:start + 2], "big") if size >= 2 else 1005
                stats.close_codes[code_num] = stats.close_codes.get(code_num, 0) + 1
            else:
                stats.other += 1
        stats.checked_in = checked
        if pos < size_all:
            self._buffer = data[pos:]
        if received:
            stats.received += received
            if stamps:
                now = _now()
                stats.latencies.extend([now - t for t in stamps])


class Load:
    """Many clients against one server."""

    def __init__(self) -> None:
        self.stats = Stats()
        self.clients: list[Client] = []

    async def connect(self, host: str, port: int, code_sets: list[list[str]],
                      path: str = "/ws", concurrency: int = 64) -> None:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(concurrency)

        async def one(codes: list[str]) -> None:
            async with gate:
                opened: asyncio.Future[None] = loop.create_future()
                message = b'{"Key":"' + ",".join(codes).encode() + b'"}'
                for attempt in range(5):
                    try:
                        _, client = await loop.create_connection(
                            lambda: Client(self.stats, message, host, port, path, opened),
                            host, port)
                        break
                    except OSError:
                        if attempt == 4:
                            raise
                        await asyncio.sleep(0.2)
                await asyncio.wait_for(opened, 30)
                self.clients.append(client)

        await asyncio.gather(*(one(codes) for codes in code_sets))

    def close(self) -> None:
        for client in self.clients:
            if client.transport is not None:
                with contextlib.suppress(Exception):
                    client.transport.abort()


# as a process of its own -----------------------------------------------------------------

def _cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _serve(args: Any) -> None:
    import random

    import benchlib

    benchlib.raise_open_files(args.count + 1000)
    codes = args.codes.split(",")
    rng = random.Random(args.seed)
    sets = [rng.sample(codes, min(args.per_client, len(codes))) for _ in range(args.count)]
    load = Load()
    began = time.monotonic()
    await load.connect(args.host, args.port, sets, path=args.path)
    benchlib.reply({"connected": load.stats.connected, "pid": os.getpid(),
                    "seconds": time.monotonic() - began})
    stats = load.stats
    cpu0, wall0 = _cpu(), time.monotonic()

    async def handle(message: dict[str, Any]) -> dict[str, Any]:
        nonlocal cpu0, wall0
        if message["cmd"] == "reset":
            stats.reset(message.get("check_every", 1))
            cpu0, wall0 = _cpu(), time.monotonic()
            return {"ok": True}
        if message["cmd"] == "report":
            deadline = time.monotonic() + message.get("timeout", 0.0)
            while stats.received < message.get("expect", 0) and time.monotonic() < deadline \
                    and not stats.closed:
                await asyncio.sleep(0.005)
            wall = max(time.monotonic() - wall0, 1e-9)
            lat = sorted(stats.latencies)
            ms = 1e-6
            return {
                "received": stats.received, "received_per_s": stats.received / wall,
                "decoded": stats.decoded, "invalid": stats.invalid,
                "check_every": stats.check_every,
                "missed": stats.missed, "reordered": stats.reordered, "closed": stats.closed,
                "other": stats.other, "close_codes": stats.close_codes,
                "client_cpu": 100 * (_cpu() - cpu0) / wall, "seconds": wall,
                "p50_ms": benchlib.percentile(lat, 50) * ms,
                "p90_ms": benchlib.percentile(lat, 90) * ms,
                "p99_ms": benchlib.percentile(lat, 99) * ms,
                "p999_ms": benchlib.percentile(lat, 99.9) * ms,
                "max_ms": (lat[-1] if lat else float("nan")) * ms,
            }
        raise ValueError(f"unknown command {message}")

    try:
        await benchlib.serve_commands(handle)
    finally:
        load.close()


def main() -> None:
    import argparse

    import benchlib

    p = argparse.ArgumentParser(description="WebSocket load generator (a benchmark's child)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/ws")
    p.add_argument("--count", type=int, required=True, help="connections")
    p.add_argument("--codes", required=True, help="codes to choose from, comma-separated")
    p.add_argument("--per-client", type=int, default=10, help="codes each connection takes")
    p.add_argument("--seed", type=int, default=7)
    benchlib.run_async(_serve(p.parse_args()))


if __name__ == "__main__":
    main()
