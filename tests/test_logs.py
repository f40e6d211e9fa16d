"""Every log line carries its time as ISO 8601 with the offset, in the service time zone."""

from __future__ import annotations

import json
import logging
import re

from tickwire.logs import JsonFormatter, TextFormatter

MOMENT = 1_764_651_909.123  # 2025-12-02 05:05:09.123 UTC


def record() -> logging.LogRecord:
    rec = logging.makeLogRecord({"msg": "ready", "levelname": "INFO", "name": "tickwire",
                                 "created": MOMENT, "msecs": 123.0})
    rec.feed = "sim"
    return rec


def test_json_lines_have_iso_8601_with_the_offset() -> None:
    line = json.loads(JsonFormatter("Asia/Shanghai").format(record()))
    assert line["ts"] == "2025-12-02T13:05:09.123+08:00"
    assert (line["msg"], line["feed"]) == ("ready", "sim")


def test_text_lines_have_the_same_time_form() -> None:
    line = TextFormatter("Europe/London").format(record())
    assert line.startswith("2025-12-02T05:05:09.123+00:00 info    ready")
    assert re.search(r"feed=sim$", line)


def test_a_client_value_cannot_forge_a_line() -> None:
    rec = record()
    rec.path = "/x\n2025-12-02T05:05:09.123+00:00 info    admin token changed"
    rec.note = "币安 ok"
    text = TextFormatter("UTC").format(rec)
    assert "\n" not in text
    assert "path='/x\\n2025" in text and "note=币安 ok" in text
    assert json.loads(JsonFormatter("UTC").format(rec))["path"] == rec.path
