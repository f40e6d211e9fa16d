"""The live server's payloads have the shapes of the vendor document's samples.

The samples below are transcribed from `spec/000_760e9610181ed9cd.txt`. The document prints
them in fragments; the WebSocket sample is put back together from its three pieces (levels 1-2
from the first, levels 3-5 and the rest from the continuation, whose `Sell` list is complete),
and the getQuote sample's `"Se11"` is the document's OCR error for `"Sell"`.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from tests.e2e.server import Server
from tickwire.catalogue import load_catalogue

SHANGHAI = ZoneInfo("Asia/Shanghai")

WS_SAMPLE: dict[str, Any] = {
    "body": {
        "StockCode": "btcusdt",
        "Price": 27206.02,
        "Open": 26689.98,
        "LastClose": 27206.02,
        "High": 27287.74,
        "Low": 26554.35,
        "Time": "2023-05-28 15:43:51",
        "LastTime": "1685259831",
        "BP1": 27206.02,
        "BV1": 0.21,
        "SP1": 27206.03,
        "SV1": 0.78,
        "TotalVol": 2293.14,
        "Depth": {
            "Buy": [
                {"BP1": 27206.02, "BV1": 0.39},
                {"BP2": 27204.14, "BV2": 0},
                {"BP3": 27204.13, "BV3": 1.28},
                {"BP4": 27203.32, "BV4": 0.64},
                {"BP5": 27203.3, "BV5": 0.68},
            ],
            "Sell": [
                {"SP1": 27206.03, "SV1": 0.78},
                {"SP2": 27206.22, "SV2": 0.04},
                {"SP3": 27206.96, "SV3": 0.02},
                {"SP4": 27208.13, "SV4": 0.01},
                {"SP5": 27208.14, "SV5": 0.07},
            ],
        },
        "BS": [
            {"time": "15:43:51", "price": 27206.02, "size": 0.21, "direction": 2},
            {"time": "15:43:51", "price": 27206.03, "size": 0.78, "direction": 1},
        ],
        "Info": [],
        "lastSize": 0.055118,
        "Diff": 516.04,
        "DiffRate": 1.93,
    }
}

QUOTE_SAMPLE: dict[str, Any] = {
    "code": 200,
    "msg": "success",
    "data": {
        "body": {
            "StockCode": "btcusdt",
            "Price": 90722.15,
            "Open": 91058.94,
            "LastClose": 90722.15,
            "High": 91161.61,
            "Low": 90158.12,
            "Time": "2025-11-30 14:10:03",
            "LastTime": "1764483003",
            "BP1": 90722.15,
            "BV1": 0.58,
            "SP1": 90722.16,
            "SV1": 0.25,
            "TotalVol": 1444.62,
            "Depth": {
                "Buy": [
                    {"BP1": 90722.15, "BV1": 0.58},
                    {"BP2": 90719.58, "BV2": 0},
                    {"BP3": 90715.21, "BV3": 0},
                    {"BP4": 90713.1, "BV4": 0.01},
                    {"BP5": 90712.24, "BV5": 0},
                    {"BP6": 90710.69, "BV6": 0.05},
                    {"BP7": 90710.57, "BV7": 0.35},
                    {"BP8": 90708.24, "BV8": 0.01},
                    {"BP9": 90707.84, "BV9": 0.06},
                    {"BP10": 90705.92, "BV10": 0},
                ],
                "Sell": [  # "Se11" in the document
                    {"SP1": 90722.16, "SV1": 0.25},
                    {"SP2": 90725.09, "SV2": 0},
                    {"SP3": 90726.02, "SV3": 0},
                    {"SP4": 90726.55, "SV4": 0},
                    {"SP5": 90727.87, "SV5": 0.05},
                    {"SP6": 90728.07, "SV6": 0},
                    {"SP7": 90729.93, "SV7": 0},
                    {"SP8": 90731.19, "SV8": 0.05},
                    {"SP9": 90731.45, "SV9": 0},
                    {"SP10": 90733.3, "SV10": 0},
                ],
            },
            "BS": [
                {"time": "14:10:03", "price": 90722.15, "size": 0.58, "direction": 2},
                {"time": "14:10:03", "price": 90722.16, "size": 0.25, "direction": 1},
            ],
            "Info": [],
            "lastSize": 0.00018,
            "Diff": -336.79,
            "DiffRate": -0.37,
        }
    },
}

KLINE_SAMPLE: list[list[Any]] = [
    [1623061860000, 36500, 36540.08, 36500, 36510.65, "2021-06-07 18:31:00", 100],
    [1623061860000, 36500, 36540.08, 36500, 36510.65, "2021-06-07 18:30:00", 100],
]

CATEGORY_SAMPLE: dict[str, Any] = {
    "code": 200,
    "msg": "success",
    "data": {
        "list": [
            {"id": "1", "name": "外汇"},
            {"id": "2", "name": "国际期货"},
            {"id": "3", "name": "国内期货"},
            {"id": "4", "name": "数字货币"},
            {"id": "7", "name": "国际股指期货"},
        ]
    },
}

SYMBOL_SAMPLE: dict[str, Any] = {
    "code": 200,
    "msg": "success",
    "data": {
        "total": 25,
        "list": [
            {"code": "HX_HSI", "name": "恒指2512"},
            {"code": "ZY_DAX", "name": "德指"},
            {"code": "HX_MHI", "name": "小恒指2512"},
            {"code": "HX_CN", "name": "富时A50"},
            {"code": "HX_NQ", "name": "小纳指"},
            {"code": "HX_ES", "name": "小标普"},
            {"code": "ZY_YM", "name": "小道指"},
            {"code": "TW_TXF", "name": "台指期2512【日】"},
        ],
    },
}

WINDOWS = {"1m": 600, "5m": 300, "15m": 300, "30m": 300, "1h": 300, "1d": 300, "1M": 100}


# ---- helpers ----------------------------------------------------------------------------

def kind(value: object) -> str:
    """The JSON type of a decoded value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    raise TypeError(type(value))


def _pattern(key: str) -> str:
    return re.sub(r"\d+$", "#", key)


def assert_same_shape(sample: Any, live: Any, path: str = "$") -> None:
    """Same JSON type everywhere, same keys in the same order in every object.

    Arrays may differ in length (more depth levels, more trades); each live element is
    compared with the sample element at the same index, or, past the sample's end, with the
    sample's last element with numbered keys (`BP10` ~ `BP5`) matched by pattern.
    """
    assert kind(live) == kind(sample), f"{path}: {kind(live)} where the sample has {kind(sample)}"
    if isinstance(sample, dict):
        assert list(live) == list(sample), f"{path}: keys {list(live)} != {list(sample)}"
        for key in sample:
            assert_same_shape(sample[key], live[key], f"{path}.{key}")
    elif isinstance(sample, list):
        if not sample:
            assert live == [], f"{path}: {live!r} where the sample has []"
            return
        assert live, f"{path}: [] where the sample has elements"
        for i, element in enumerate(live):
            if i < len(sample):
                assert_same_shape(sample[i], element, f"{path}[{i}]")
            else:
                template = sample[-1]
                assert kind(element) == kind(template), f"{path}[{i}]"
                if isinstance(template, dict):
                    assert [_pattern(k) for k in element] == [_pattern(k) for k in template], (
                        f"{path}[{i}]: keys {list(element)}")
                    for (k, v), t in zip(element.items(), template.values(), strict=True):
                        assert_same_shape(t, v, f"{path}[{i}].{k}")


def assert_depth_numbering(depth: dict[str, Any]) -> None:
    assert list(depth) == ["Buy", "Sell"]
    for side, (price, volume) in (("Buy", ("BP", "BV")), ("Sell", ("SP", "SV"))):
        for i, level in enumerate(depth[side], 1):
            assert list(level) == [f"{price}{i}", f"{volume}{i}"], (side, i, level)
            assert all(kind(v) == "number" for v in level.values())


def get(server: Server, path: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(server.url + path)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, dict(response.headers), response.read()


def get_json(server: Server, path: str) -> Any:
    status, headers, raw = get(server, path)
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    return json.loads(raw)


def catalogue_depth(code: str) -> int:
    return load_catalogue().products[code].depth


# ---- the samples themselves -------------------------------------------------------------

def test_the_transcribed_samples_are_self_consistent() -> None:
    assert_same_shape(QUOTE_SAMPLE["data"]["body"], WS_SAMPLE["body"])
    assert_depth_numbering(WS_SAMPLE["body"]["Depth"])
    assert_depth_numbering(QUOTE_SAMPLE["data"]["body"]["Depth"])
    for body in (WS_SAMPLE["body"], QUOTE_SAMPLE["data"]["body"]):
        assert round(body["Price"] - body["Open"], 2) == body["Diff"]
        assert round(body["Diff"] / body["Open"] * 100, 2) == body["DiffRate"]
        local = datetime.fromtimestamp(int(body["LastTime"]), tz=UTC).astimezone(SHANGHAI)
        assert local.strftime("%Y-%m-%d %H:%M:%S") == body["Time"]
    assert kind(KLINE_SAMPLE[0][0]) == "number"


# ---- WebSocket push ---------------------------------------------------------------------

async def _first_push(server: Server, codes: str) -> list[dict[str, Any]]:
    pushes: list[dict[str, Any]] = []
    wanted = len(codes.split(","))
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(server.ws_url, timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws:
        await ws.send_str(json.dumps({"Key": codes}))
        while len(pushes) < wanted:
            message = await asyncio.wait_for(ws.receive(), 10)
            assert message.type == aiohttp.WSMsgType.TEXT, message
            assert message.data.startswith('{"body":{"StockCode":')
            pushes.append(json.loads(message.data))
    return pushes


async def test_websocket_push_has_the_samples_shape(server: Server) -> None:
    (push,) = await _first_push(server, "btcusdt")
    assert list(push) == ["body"]
    assert_same_shape(WS_SAMPLE, push)
    body = push["body"]
    assert body["StockCode"] == "btcusdt"
    assert_depth_numbering(body["Depth"])
    assert len(body["Depth"]["Buy"]) == catalogue_depth("btcusdt")
    assert re.fullmatch(r"\d{10}", body["LastTime"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", body["Time"])
    local = datetime.fromtimestamp(int(body["LastTime"]), tz=UTC).astimezone(SHANGHAI)
    assert local.strftime("%Y-%m-%d %H:%M:%S") == body["Time"]
    for trade in body["BS"]:
        assert re.fullmatch(r"\d\d:\d\d:\d\d", trade["time"])
        assert trade["direction"] in (1, 2)


async def test_websocket_pushes_for_other_kinds_of_product(server: Server) -> None:
    pushes = await _first_push(server, "fx_sgbpusd, HX_HSI ,nf_AU0")
    bodies = {p["body"]["StockCode"]: p["body"] for p in pushes}
    assert set(bodies) == {"fx_sgbpusd", "HX_HSI", "nf_AU0"}
    sample_body = WS_SAMPLE["body"]
    for code, body in bodies.items():
        assert list(body) == list(sample_body), code
        for key in sample_body:
            if key not in ("Depth", "BS", "Info"):
                assert kind(body[key]) == kind(sample_body[key]), (code, key)
    fx = bodies["fx_sgbpusd"]
    assert fx["BS"] == [] and fx["TotalVol"] == 0  # forex: no trades, no volume
    assert_depth_numbering(fx["Depth"])
    assert list(bodies["HX_HSI"]["Info"]) == ["TotalAmount"]
    assert list(bodies["nf_AU0"]["Info"]) == ["TotalAmount", "LimitUp", "LimitDown"]
    for value in bodies["nf_AU0"]["Info"].values():
        assert kind(value) == "number"


# ---- getQuote.php -----------------------------------------------------------------------

def test_get_quote_has_the_samples_shape(server: Server) -> None:
    status, _, raw = get(server, "/getQuote.php?code=btcusdt")
    assert status == 200
    assert raw.startswith(b'{"code":200,"msg":"success","data":{"body":{"StockCode":"btcusdt"')
    live = json.loads(raw)
    assert_same_shape(QUOTE_SAMPLE, live)
    body = live["data"]["body"]
    assert_depth_numbering(body["Depth"])
    assert len(body["Depth"]["Buy"]) == len(body["Depth"]["Sell"]) == 10  # as in the sample
    assert body["Diff"] == round(body["Price"] - body["Open"], 2)
    if body["Open"]:
        assert body["DiffRate"] == round(body["Diff"] / body["Open"] * 100, 2)


def test_get_quote_ignores_unknown_parameters(server: Server) -> None:
    live = get_json(server, "/getQuote.php?code=btcusdt&sign=x&stamp=1&callback=cb")
    assert_same_shape(QUOTE_SAMPLE, live)


def test_get_quote_error_envelope(server: Server) -> None:
    request = urllib.request.Request(server.url + "/getQuote.php?code=nosuchcode")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 404
    error = json.loads(info.value.read())
    assert list(error) == ["code", "msg", "data"]
    assert error["code"] == 404 and isinstance(error["msg"], str) and error["data"] is None


# ---- redis.php --------------------------------------------------------------------------

KLINE_TYPES = [int, "number", "number", "number", "number", str, "number"]


def assert_kline_rows(rows: list[Any], interval: str) -> None:
    assert kind(rows) == "array"
    for row in rows:
        assert len(row) == 7, row
        assert type(row[0]) is int
        assert type(row[5]) is str
        for i in (1, 2, 3, 4, 6):
            assert kind(row[i]) == "number", (i, row)
        for sample_value, live_value in zip(KLINE_SAMPLE[0], row, strict=True):
            assert kind(live_value) == kind(sample_value)
        local = datetime.fromtimestamp(row[0] / 1000, tz=UTC).astimezone(SHANGHAI)
        assert row[5] == local.strftime("%Y-%m-%d %H:%M:%S")
        assert row[3] <= min(row[1], row[4]) and row[2] >= max(row[1], row[4]), row
        if interval == "1d":
            assert row[5].endswith(" 00:00:00")
        if interval == "1M":
            assert row[5][8:] == "01 00:00:00"
    opens = [row[0] for row in rows]
    assert opens == sorted(opens, reverse=True)  # newest first
    assert len(set(opens)) == len(opens)


@pytest.mark.parametrize("interval", list(WINDOWS))
def test_klines_are_rows_of_seven_typed_values(server: Server, interval: str) -> None:
    rows = get_json(server, f"/redis.php?code=btcusdt&time={interval}&rows=40")
    assert len(rows) == 40
    assert_kline_rows(rows, interval)


def test_klines_default_and_maximum_rows(server: Server) -> None:
    assert len(get_json(server, "/redis.php?code=btcusdt&time=1m")) == 40
    for interval, window in WINDOWS.items():
        rows = get_json(server, f"/redis.php?code=btcusdt&time={interval}&rows=100000")
        assert len(rows) == window, interval
        assert_kline_rows(rows, interval)


def test_forex_klines_have_zero_volume(server: Server) -> None:
    # the document's own example request
    rows = get_json(server, "/redis.php?code=fx_sgbpusd&time=1m&rows=40")
    assert len(rows) == 40
    assert_kline_rows(rows, "1m")
    assert all(row[6] == 0 for row in rows)


# ---- getCategory.php and getSymbolList.php ----------------------------------------------

def test_get_category_equals_the_sample(server: Server) -> None:
    status, _, raw = get(server, "/getCategory.php")
    assert status == 200
    live = json.loads(raw)
    assert live == CATEGORY_SAMPLE
    assert json.dumps(live, ensure_ascii=False) == json.dumps(CATEGORY_SAMPLE, ensure_ascii=False)


def test_get_symbol_list_equals_the_sample(server: Server) -> None:
    """The sample's monthly contracts are named after its month (2512); ours after today's."""
    live = get_json(server, "/getSymbolList.php?category=7&page=1&pageSize=8")
    assert_same_shape(SYMBOL_SAMPLE, live)
    yymm = datetime.now(SHANGHAI).strftime("%y%m")
    expected = [{**s, "name": s["name"].replace("2512", yymm)}
                for s in SYMBOL_SAMPLE["data"]["list"]]
    assert live["data"]["list"] == expected
    assert json.dumps(live["data"]["list"], ensure_ascii=False) == \
        json.dumps(expected, ensure_ascii=False)
    assert type(live["data"]["total"]) is int
    assert live["data"]["total"] >= 8


def test_get_symbol_list_pages(server: Server) -> None:
    first = get_json(server, "/getSymbolList.php?category=7&page=1&pageSize=5")
    second = get_json(server, "/getSymbolList.php?category=7&page=2&pageSize=5")
    codes = [s["code"] for s in first["data"]["list"] + second["data"]["list"]]
    assert len(codes) == len(set(codes)) == 10
    assert codes[:8] == [s["code"] for s in SYMBOL_SAMPLE["data"]["list"]]
    total = first["data"]["total"]
    past = get_json(server, f"/getSymbolList.php?category=7&page={total + 1}&pageSize=1")
    assert past == {"code": 200, "msg": "success", "data": {"total": total, "list": []}}
    default = get_json(server, "/getSymbolList.php?category=7")
    assert len(default["data"]["list"]) == min(10, total)
