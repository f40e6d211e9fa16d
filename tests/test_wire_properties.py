"""The wire encoder against `json.loads`: whatever goes in, valid JSON of the protocol's
shape comes out, and it reads back as what went in."""

from __future__ import annotations

import json
import struct
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzzing import fuzz_settings
from tickwire.market.bars import encode_bar
from tickwire.market.clock import TimeZone
from tickwire.models import num
from tickwire.wire import (
    encode,
    envelope,
    error_body,
    pong,
    push_message,
    split_codes,
    text_frame,
    ws_error,
)

pytestmark = pytest.mark.fuzz

CASES = (100, 5000)
TZ = TimeZone("Asia/Shanghai")

texts = st.text(alphabet=st.characters(exclude_categories=["Cs"]))
"""Any text a JSON string can hold (a lone surrogate cannot be UTF-8)."""
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | texts,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(texts, inner, max_size=5),
    max_leaves=25)


@fuzz_settings(*CASES)
@given(data=json_values)
def test_an_envelope_reads_back_as_its_data(data: Any) -> None:
    assert json.loads(envelope(encode(data))) == {"code": 200, "msg": "success", "data": data}


@fuzz_settings(*CASES)
@given(data=st.dictionaries(texts, json_values, max_size=8))
def test_a_push_reads_back_as_its_body(data: dict[str, Any]) -> None:
    assert json.loads(push_message(encode(data))) == {"body": data}


@fuzz_settings(*CASES)
@given(value=json_values)
def test_a_pong_echoes_the_value_with_its_type(value: Any) -> None:
    echoed = json.loads(pong(value))["pong"]
    assert echoed == value and type(echoed) is type(value)


@fuzz_settings(*CASES)
@given(code=st.integers(100, 599), msg=st.text())
def test_an_error_is_always_json_whatever_its_message(code: int, msg: str) -> None:
    """Even a message with a lone surrogate (from bytes that were not UTF-8) is answered:
    the surrogate becomes `?`, the rest stays."""
    readable = msg.encode("utf-8", "replace").decode("utf-8")
    assert json.loads(error_body(code, msg)) == {"code": code, "msg": readable, "data": None}
    assert json.loads(ws_error(code, msg)) == {"code": code, "msg": readable}


@fuzz_settings(*CASES)
@given(payload=st.one_of(st.binary(max_size=300), st.integers(0, 70_000).map(
    lambda n: b"x" * n)))
def test_a_text_frame_carries_its_payload_whole(payload: bytes) -> None:
    frame = text_frame(payload)
    assert frame[0] == 0x81 and not frame[1] & 0x80  # final text frame, unmasked
    size = frame[1]
    header = 2
    if size == 126:
        size, header = struct.unpack("!H", frame[2:4])[0], 4
    elif size == 127:
        size, header = struct.unpack("!Q", frame[2:10])[0], 10
    assert size == len(payload) and frame[header:] == payload
    assert header == (2 if len(payload) < 126 else 4 if len(payload) < 65_536 else 10)


@fuzz_settings(*CASES)
@given(parts=st.lists(st.text(alphabet=st.characters(blacklist_characters=",")), max_size=12))
def test_codes_split_as_a_client_reads_them(parts: list[str]) -> None:
    codes = split_codes(",".join(parts))
    assert codes == list(dict.fromkeys(p.strip() for p in parts if p.strip()))
    assert split_codes(",".join(codes)) == codes == split_codes(parts)


@fuzz_settings(*CASES)
@given(value=st.floats(-1e12, 1e12, allow_nan=False), decimals=st.integers(0, 8))
def test_a_number_is_written_rounded_and_integral_ones_as_integers(value: float,
                                                                    decimals: int) -> None:
    written = json.loads(encode(num(value, decimals)))
    assert written == round(value, decimals)
    assert isinstance(written, int) == (round(value, decimals) % 1 == 0)


@fuzz_settings(*CASES)
@given(open_ms=st.integers(0, 4_102_444_800_000),
       prices=st.lists(st.floats(0.0001, 1e9), min_size=4, max_size=4),
       volume=st.floats(0, 1e12), decimals=st.integers(0, 8), vdec=st.integers(0, 8))
def test_a_bar_reads_back_as_the_protocols_row(open_ms: int, prices: list[float],
                                               volume: float, decimals: int,
                                               vdec: int) -> None:
    row = (open_ms, *prices, volume)
    bar = json.loads(encode_bar(row, TZ, decimals, vdec))  # type: ignore[arg-type]
    local = datetime.fromtimestamp(open_ms / 1000, ZoneInfo("Asia/Shanghai"))
    assert bar == [open_ms, *(round(p, decimals) for p in prices),
                   local.strftime("%Y-%m-%d %H:%M:%S"), round(volume, vdec)]
