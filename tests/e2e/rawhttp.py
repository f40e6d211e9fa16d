"""Bare HTTP over a socket, for tests that need the exact bytes on the wire: a path as sent
(not as a client library would tidy it), a header that is not UTF-8, a lying length."""

from __future__ import annotations

import json
import socket


class Answer:
    """The status, headers (names in lowercase) and body of an answer read whole."""

    def __init__(self, raw: bytes) -> None:
        assert raw, "no answer: the connection closed without a byte"
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def json(self) -> dict[str, object]:
        data: dict[str, object] = json.loads(self.body)
        return data


def send(port: int, request: bytes, source: str = "127.0.0.1",
         host: str = "127.0.0.1") -> Answer:
    """One request as these bytes, from `source`; the whole answer (the request asks the
    server to close)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.settimeout(10)
        sock.bind((source, 0))
        sock.connect((host, port))
        sock.sendall(request)
        raw = b""
        try:
            while chunk := sock.recv(65536):
                raw += chunk
        except ConnectionResetError:
            pass  # answered, then cut while we were still sending: the answer is what counts
    return Answer(raw)


def request(method: str, path: str, headers: dict[str, str] | None = None,
            body: bytes = b"") -> bytes:
    """A request with `Connection: close` (and the body's length when there is one)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: tickwire", "Connection: close",
             *(f"{name}: {value}" for name, value in (headers or {}).items())]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
