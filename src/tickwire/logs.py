"""Structured logs: JSON lines (or plain text on a terminal), extra fields included.

Every line's time is ISO 8601 with its offset, in the service time zone (the zone of the
quotes' and K-lines' times), e.g. `2026-12-02T13:05:09.123+08:00`.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

import msgspec

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def local_time(seconds: float, zone: tzinfo) -> str:
    """A Unix time as the logs write it: ISO 8601 to the millisecond with the offset of
    `zone`, e.g. `2026-12-02T13:05:09.123+08:00`."""
    return datetime.fromtimestamp(seconds, zone).isoformat(timespec="milliseconds")


class _Formatter(logging.Formatter):
    def __init__(self, timezone: str) -> None:
        super().__init__()
        self._zone = ZoneInfo(timezone)

    def timestamp(self, record: logging.LogRecord) -> str:
        return local_time(record.created, self._zone)


class JsonFormatter(_Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": self.timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                entry[key] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return msgspec.json.encode(entry, enc_hook=str).decode()


def _one_line(value: object) -> str:
    """A value as it goes in a text line: a client's path or message with a line break or
    another control character in it is quoted, so it cannot forge a line of its own."""
    text = str(value)
    return text if text.isprintable() else repr(text)


class TextFormatter(_Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{k}={_one_line(v)}" for k, v in record.__dict__.items() if k not in _STANDARD
        )
        line = f"{self.timestamp(record)} {record.levelname.lower():7} {record.getMessage()}"
        line = f"{line}  {extras}" if extras else line
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(fmt: str = "auto", level: str = "info",
                  timezone: str = "Asia/Shanghai") -> None:
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(timezone) if fmt == "json" else TextFormatter(timezone))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
