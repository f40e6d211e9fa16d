"""Decoding the wire into the SDK's models: the document's samples and the vendor's quirks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from tests.e2e.test_wire_shapes import KLINE_SAMPLE, QUOTE_SAMPLE, WS_SAMPLE
from tickwire import Bar, Bars, Level, Quote, Trade
from tickwire.client.models import decode_bars, decode_message, decode_quote


def push(body: dict[str, Any]) -> bytes:
    return json.dumps({"body": body}, ensure_ascii=False).encode()


def test_the_documents_websocket_sample() -> None:
    message = decode_message(json.dumps(WS_SAMPLE))
    q = message.body
    assert q is not None
    assert (q.code, q.price, q.open, q.last_close) == ("btcusdt", 27206.02, 26689.98, 27206.02)
    assert (q.high, q.low, q.time, q.last_time) == (27287.74, 26554.35, "2023-05-28 15:43:51",
                                                     1685259831)
    assert (q.bid, q.bid_volume, q.ask, q.ask_volume) == (27206.02, 0.21, 27206.03, 0.78)
    assert (q.volume, q.last_size, q.change, q.change_pct) == (2293.14, 0.055118, 516.04, 1.93)
    assert q.bids[0] == Level(27206.02, 0.39) and q.bids[1] == Level(27204.14, 0)
    assert len(q.bids) == len(q.asks) == 5 and q.asks[-1] == Level(27208.14, 0.07)
    assert q.trades == (Trade("15:43:51", 27206.02, 0.21, "buy"),
                        Trade("15:43:51", 27206.03, 0.78, "sell"))
    assert q.info == {}
    assert q.timestamp == datetime(2023, 5, 28, 7, 43, 51, tzinfo=UTC)


def test_the_documents_quote_sample_with_ten_levels() -> None:
    body = QUOTE_SAMPLE["data"]["body"]
    q = decode_quote(json.dumps(body).encode())
    assert len(q.bids) == len(q.asks) == 10
    assert q.bids[-1] == Level(90705.92, 0) and q.asks[-1] == Level(90733.3, 0)
    assert q.change == -336.79 and q.change_pct == -0.37


def test_raw_is_the_body_as_received() -> None:
    body = dict(WS_SAMPLE["body"], Extra={"anything": [1, 2]})
    data = push(body)
    q = decode_message(data).body
    assert q is not None
    assert q.raw == body
    assert q.raw_json == json.dumps(body, ensure_ascii=False).encode()
    assert decode_quote(q.raw_json).raw == body


def test_quote_is_immutable_and_encodes_back_to_the_wire_shape() -> None:
    q = decode_quote(json.dumps(WS_SAMPLE["body"]))
    with pytest.raises(AttributeError):
        q.price = 1.0  # type: ignore[misc]
    assert json.loads(msgspec.json.encode(q)) == dict(WS_SAMPLE["body"], LastTime=1685259831)
    built = Quote("abc", price=1.5)
    assert built.raw["StockCode"] == "abc" and built.raw["Price"] == 1.5


@pytest.mark.parametrize("quirk", [
    {"Depth": [], "Info": [], "BS": []},
    {"Depth": {}, "Info": {}, "BS": {}},
    {"Depth": {"Buy": []}},
    {"Depth": None, "Info": None, "BS": None},
])
def test_empty_depth_info_and_trades_in_every_spelling(quirk: dict[str, Any]) -> None:
    q = decode_quote(json.dumps({**WS_SAMPLE["body"], "Info": [], **quirk}))
    assert q.bids == () and q.asks == ()
    assert q.info == {}
    assert q.trades == () if "BS" in quirk else len(q.trades) == 2
    assert q.price == 27206.02


def test_last_time_as_string_or_number_and_numbers_as_strings() -> None:
    for value in ("1685259831", 1685259831):
        q = decode_quote(json.dumps({"StockCode": "x", "LastTime": value}))
        assert q.last_time == 1685259831
    q = decode_quote(b'{"StockCode":"x","Price":"12.5","TotalVol":"3"}')
    assert (q.price, q.volume) == (12.5, 3.0)


def test_zero_bid_or_ask_is_tolerated() -> None:
    q = decode_quote(json.dumps(dict(WS_SAMPLE["body"], BP1=0, BV1=0)))
    assert q.bid == 0 and q.mid is None and q.spread is None
    full = decode_quote(json.dumps(WS_SAMPLE["body"]))
    assert full.mid == pytest.approx((27206.02 + 27206.03) / 2)
    assert full.spread == pytest.approx(0.01)


def test_a_minimal_body_decodes_with_defaults() -> None:
    q = decode_quote(b'{"StockCode":"fx_x","Price":1.1}')
    assert (q.price, q.bid, q.ask, q.time, q.timestamp) == (1.1, 0, 0, "", None)
    assert q.bids == q.asks == q.trades == () and q.info == {}


def test_info_keys_and_level_keys_in_any_order() -> None:
    body = dict(WS_SAMPLE["body"], Info={"TotalAmount": 12.5, "LimitUp": 3},
                Depth={"Buy": [{"BV1": 2, "BP1": 10}], "Sell": [{"SP1": 11, "SV1": 1}]})
    q = decode_quote(json.dumps(body))
    assert q.info == {"TotalAmount": 12.5, "LimitUp": 3}
    assert q.bids == (Level(10, 2),) and q.asks == (Level(11, 1),)


def test_messages_without_body_are_told_apart() -> None:
    assert decode_message(b'{"pong":1689303517}').pong == 1689303517
    error = decode_message(b'{"code":404,"msg":"unknown code: xyz"}')
    assert error.body is None and (error.code, error.msg) == (404, "unknown code: xyz")


def test_bars_are_sorted_oldest_first_whatever_the_order() -> None:
    rows = [[1_000 * i, 1, 2, 0.5, 1.5, f"t{i}", i] for i in (3, 1, 2)]
    bars = decode_bars(json.dumps(rows).encode())
    assert [b.open_ms for b in bars] == [1000, 2000, 3000]
    assert bars[0] == Bar(1000, 1, 2, 0.5, 1.5, "t1", 1)
    assert isinstance(bars, Bars) and isinstance(bars, tuple)
    sample = decode_bars(json.dumps(KLINE_SAMPLE).encode())
    assert sample[0].open == 36500 and sample[0].volume == 100


def test_bars_to_pandas() -> None:
    pd = pytest.importorskip("pandas")
    bars = Bars([Bar(60_000, 1, 2, 0.5, 1.5, "1970-01-01 08:01:00", 7)])
    frame = bars.to_pandas()
    assert list(frame.columns) == ["open_ms", "open", "high", "low", "close", "volume"]
    assert frame.index[0] == pd.Timestamp("1970-01-01 00:01", tz="UTC")
    assert frame["close"].iloc[0] == 1.5


def test_odd_levels_nulls_and_words_in_the_book() -> None:
    body = dict(WS_SAMPLE["body"], Depth={
        "Buy": [{"BP1": 10, "BV1": None}, {"BP2": "9.5", "BV2": "x"}],
        "Sell": [{"SV1": 1, "SP1": 11, "extra": 3}]})
    q = decode_quote(json.dumps(body))
    assert q.bids == (Level(10, 0), Level(9.5, 0))
    assert q.asks == (Level(11, 1),)  # keys in any order, an unknown one ignored
