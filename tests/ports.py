"""Free ports for the servers the tests start.

A port is picked below the kernel's range for outgoing connections (Linux: 32768-60999),
so that no client's connection (to Redis, to another server) can take it between the
test's choice and the server's bind, and never handed out twice in one test run.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_LOWEST = 20_000
_handed_out: set[int] = set()


def _outgoing_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32_768, 60_999


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port nothing listens on now, outside the outgoing range where there is room."""
    low, _ = _outgoing_range()
    if low - _LOWEST > 1_000:
        for _ in range(200):
            port = random.randrange(_LOWEST, low)
            if port not in _handed_out and _bindable(port):
                _handed_out.add(port)
                return port
    with socket.socket() as sock:  # no room below the range: any free port
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    _handed_out.add(port)
    return port
