"""PROTOCOL sections 1, 3, 5, 6, 7 and 9 over real HTTP against a real server."""

from __future__ import annotations

import gzip
import itertools
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import GENEROUS_LIMITS, small_config
from tests.e2e.server import Server, start_server

UTC8_MS = 8 * 3_600_000


def get(server: Server, path: str, headers: dict[str, str] | None = None
        ) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(server.url + path, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def get_json(server: Server, path: str) -> Any:
    status, _, body = get(server, path)
    assert status == 200, body
    return json.loads(body)


def assert_error(server: Server, path: str, status: int, msg_part: str) -> None:
    code, headers, body = get(server, path)
    assert code == status, body
    assert headers["Content-Type"].startswith("application/json")
    payload = json.loads(body)
    assert list(payload) == ["code", "msg", "data"]
    assert payload["code"] == status and payload["data"] is None
    assert msg_part in payload["msg"]


# section 1: one port serves every path ------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/getQuote.php?code=btcusdt", "/redis.php?code=btcusdt&time=1m&rows=2",
    "/getCategory.php", "/getSymbolList.php?category=4", "/healthz", "/metrics",
    "/openapi.json",
])
def test_every_path_answers_on_the_main_port(server: Server, path: str) -> None:
    assert get(server, path)[0] == 200


def test_unknown_path_is_a_json_404(server: Server) -> None:
    assert_error(server, "/nope.php", 404, "not found")


@pytest.mark.parametrize("path", ["/getCategory.php", "/getQuote.php", "/redis.php?code=x",
                                  "/ws"])
def test_wrong_method_is_a_json_405(server: Server, path: str) -> None:
    """Before any parameter is checked or any rate limit counted."""
    request = urllib.request.Request(server.url + path, method="POST", data=b"")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 405
    assert json.loads(info.value.read())["code"] == 405


# section 3: envelopes, errors, unknown parameters, gzip ------------------------------------

def test_quote_envelope(server: Server) -> None:
    payload = get_json(server, "/getQuote.php?code=btcusdt")
    assert list(payload) == ["code", "msg", "data"]
    assert payload["code"] == 200 and payload["msg"] == "success"
    assert payload["data"]["body"]["StockCode"] == "btcusdt"


@pytest.mark.parametrize(("path", "status", "msg"), [
    ("/getQuote.php", 400, "missing parameter: code"),
    ("/getQuote.php?code=", 400, "missing parameter: code"),
    ("/getQuote.php?code=nosuch", 404, "unknown code: nosuch"),
    ("/redis.php?time=1m", 400, "missing parameter: code"),
    ("/redis.php?code=btcusdt", 400, "missing parameter: time"),
    ("/redis.php?code=btcusdt&time=2m", 400, "bad parameter time"),
    ("/redis.php?code=nosuch&time=1m", 404, "unknown code: nosuch"),
    ("/redis.php?code=btcusdt&time=1m&rows=0", 400, "bad parameter rows"),
    ("/redis.php?code=btcusdt&time=1m&rows=-5", 400, "bad parameter rows"),
    ("/redis.php?code=btcusdt&time=1m&rows=abc", 400, "bad parameter rows"),
    ("/redis.php?code=btcusdt&time=1m&end=yesterday", 400, "bad parameter end"),
    ("/getSymbolList.php", 400, "missing parameter: category"),
    ("/getSymbolList.php?category=99", 404, "unknown category"),
    ("/getSymbolList.php?category=4&page=0", 400, "bad parameter page"),
    ("/getSymbolList.php?category=4&pageSize=x", 400, "bad parameter pageSize"),
])
def test_errors_are_status_equals_code(server: Server, path: str, status: int, msg: str) -> None:
    assert_error(server, path, status, msg)


def test_unknown_parameters_are_ignored(server: Server) -> None:
    payload = get_json(server, "/getQuote.php?code=btcusdt&sign=abc&stamp=1&callback=cb")
    assert payload["data"]["body"]["StockCode"] == "btcusdt"
    rows = get_json(server, "/redis.php?code=btcusdt&time=1m&rows=3&token=x")
    assert len(rows) == 3


def test_gzip_is_off_by_default_even_when_asked(server: Server) -> None:
    status, headers, body = get(server, "/getQuote.php?code=btcusdt",
                                {"Accept-Encoding": "gzip"})
    assert status == 200
    assert "Content-Encoding" not in headers
    assert json.loads(body)["code"] == 200


@pytest.fixture(scope="module")
def gzip_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("gzip"),
                       small_config('gzip = true\nkline_order = "oldest_first"\n'))
    yield srv
    srv.stop()


def test_gzip_switch_compresses_when_asked(gzip_server: Server) -> None:
    status, headers, body = get(gzip_server, "/getQuote.php?code=btcusdt",
                                {"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(body))["code"] == 200
    status, headers, body = get(gzip_server, "/getQuote.php?code=ethusdt")
    assert "Content-Encoding" not in headers
    assert json.loads(body)["code"] == 200


def test_kline_order_switch(gzip_server: Server) -> None:
    rows = get_json(gzip_server, "/redis.php?code=btcusdt&time=1m&rows=50")
    stamps = [r[0] for r in rows]
    assert stamps == sorted(stamps) and len(set(stamps)) == 50


# section 5: quotes, single and multi-code ---------------------------------------------------

def test_multi_code_quote_in_order_unknown_left_out(server: Server) -> None:
    payload = get_json(server, "/getQuote.php?code=ethusdt,nosuch,btcusdt,%20HX_HSI")
    assert [b["StockCode"] for b in payload["data"]["body"]] == ["ethusdt", "btcusdt", "HX_HSI"]


def test_multi_code_quote_all_unknown_is_404(server: Server) -> None:
    assert_error(server, "/getQuote.php?code=a1,b2", 404, "unknown codes")


def test_multi_code_quote_is_bounded(server: Server) -> None:
    codes = ",".join(f"c{i}" for i in range(51))
    assert_error(server, f"/getQuote.php?code={codes}", 400, "at most 50 codes")


def test_quote_prices_have_product_precision(server: Server) -> None:
    for code, decimals in [("btcusdt", 2), ("fx_seurusd", 5), ("fx_susdjpy", 3)]:
        body = get_json(server, f"/getQuote.php?code={code}")["data"]["body"]
        for key in ("Price", "Open", "High", "Low", "LastClose", "BP1", "SP1", "Diff"):
            text = repr(body[key])
            assert len(text.split(".")[1]) <= decimals if "." in text else True, (key, text)
        assert body["Diff"] == round(body["Price"] - body["Open"], decimals)
        assert body["DiffRate"] == round(body["Diff"] / body["Open"] * 100, 2)


# section 6: K-lines -------------------------------------------------------------------------

def test_rows_default_and_clamps(server: Server) -> None:
    assert len(get_json(server, "/redis.php?code=btcusdt&time=1m")) == 40
    for interval, most in [("1m", 600), ("5m", 300), ("15m", 300), ("30m", 300), ("1h", 300),
                           ("1d", 300), ("1M", 100)]:
        rows = get_json(server, f"/redis.php?code=btcusdt&time={interval}&rows=100000")
        assert len(rows) == most, interval


def test_huge_rows_is_clamped_not_an_error(server: Server) -> None:
    rows = get_json(server, "/redis.php?code=btcusdt&time=1M&rows=" + "9" * 40)
    assert len(rows) == 100


def test_bars_are_newest_first_aligned_and_well_formed(server: Server) -> None:
    for interval, step in [("1m", 60_000), ("5m", 300_000), ("1h", 3_600_000)]:
        rows = get_json(server, f"/redis.php?code=btcusdt&time={interval}&rows=300")
        stamps = [r[0] for r in rows]
        assert stamps == sorted(stamps, reverse=True)
        assert all(s % step == 0 for s in stamps)
        assert all(a - b == step for a, b in itertools.pairwise(stamps)), interval
        for row in rows:
            ms, o, h, low, c, text, v = row
            assert low <= min(o, c) and h >= max(o, c) and v >= 0
            local = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime((ms + UTC8_MS) / 1000))
            assert text == local


def test_days_and_months_align_in_service_time_zone(server: Server) -> None:
    for row in get_json(server, "/redis.php?code=btcusdt&time=1d&rows=30"):
        assert (row[0] + UTC8_MS) % 86_400_000 == 0 and row[5].endswith(" 00:00:00")
    for row in get_json(server, "/redis.php?code=btcusdt&time=1M&rows=30"):
        assert re.fullmatch(r"\d{4}-\d{2}-01 00:00:00", row[5])


def test_minute_and_month_are_different_intervals(server: Server) -> None:
    minute = get_json(server, "/redis.php?code=btcusdt&time=1m&rows=2")
    month = get_json(server, "/redis.php?code=btcusdt&time=1M&rows=2")
    assert minute[0][0] - minute[1][0] == 60_000
    assert month[0][0] - month[1][0] > 27 * 86_400_000


def test_forex_bars_have_no_volume(server: Server) -> None:
    rows = get_json(server, "/redis.php?code=fx_seurusd&time=5m&rows=100")
    assert {r[6] for r in rows} == {0}


def test_latest_bars_close_at_the_quote_price(server: Server) -> None:
    for _ in range(50):
        before = get_json(server, "/getQuote.php?code=btcusdt")["data"]["body"]
        minute = get_json(server, "/redis.php?code=btcusdt&time=1m&rows=1")[0]
        day = get_json(server, "/redis.php?code=btcusdt&time=1d&rows=1")[0]
        month = get_json(server, "/redis.php?code=btcusdt&time=1M&rows=1")[0]
        after = get_json(server, "/getQuote.php?code=btcusdt")["data"]["body"]
        if before == after:  # no update slipped in between
            assert minute[4] == day[4] == month[4] == before["Price"]
            assert day[1] == before["Open"] and day[2] == before["High"]
            assert day[3] == before["Low"]
            return
    pytest.fail("the quote never held still for five requests")


def test_end_pages_back(server: Server) -> None:
    newest = get_json(server, "/redis.php?code=btcusdt&time=1m&rows=600")
    pivot = newest[100][0]
    page = get_json(server, f"/redis.php?code=btcusdt&time=1m&rows=50&end={pivot}")
    assert page[0][0] == pivot and len(page) == 50
    assert page == newest[100:150]
    older = get_json(server, f"/redis.php?code=btcusdt&time=1m&rows=600&end={pivot}")
    assert older[0][0] == pivot and older[:400] == newest[100:500]


def test_end_before_all_history_is_empty(server: Server) -> None:
    assert get_json(server, "/redis.php?code=btcusdt&time=1m&rows=10&end=1000") == []


# section 7: categories and symbols ----------------------------------------------------------

def test_categories_are_the_documents_five(server: Server) -> None:
    payload = get_json(server, "/getCategory.php")
    assert payload["data"]["list"] == [
        {"id": "1", "name": "外汇"}, {"id": "2", "name": "国际期货"},
        {"id": "3", "name": "国内期货"}, {"id": "4", "name": "数字货币"},
        {"id": "7", "name": "国际股指期货"},
    ]


def test_symbol_pages(server: Server) -> None:
    first = get_json(server, "/getSymbolList.php?category=4")["data"]
    assert len(first["list"]) == 10 and first["total"] >= 14
    everything = get_json(server, "/getSymbolList.php?category=4&pageSize=100")["data"]
    assert everything["list"][:10] == first["list"]
    assert len(everything["list"]) == everything["total"]
    second = get_json(server, "/getSymbolList.php?category=4&page=2&pageSize=5")["data"]
    assert second["list"] == everything["list"][5:10]
    past = get_json(server, "/getSymbolList.php?category=4&page=999")["data"]
    assert past == {"total": everything["total"], "list": []}
    clamped = get_json(server, "/getSymbolList.php?category=3&pageSize=1000")["data"]
    assert len(clamped["list"]) == min(100, clamped["total"])


def test_catalogue_has_sixty_products_in_five_categories(server: Server) -> None:
    total = 0
    for category in ("1", "2", "3", "4", "7"):
        total += get_json(server, f"/getSymbolList.php?category={category}")["data"]["total"]
    assert total >= 60


def test_every_listed_symbol_has_a_quote(server: Server) -> None:
    codes = []
    for category in ("1", "2", "3", "4", "7"):
        data = get_json(server, f"/getSymbolList.php?category={category}&pageSize=100")["data"]
        codes += [item["code"] for item in data["list"]]
    for start in range(0, len(codes), 50):
        chunk = codes[start:start + 50]
        bodies = get_json(server, "/getQuote.php?code=" + ",".join(chunk))["data"]["body"]
        assert [b["StockCode"] for b in bodies] == chunk


# section 9: time ----------------------------------------------------------------------------

def test_quote_times_are_utc8_strings(server: Server) -> None:
    body = get_json(server, "/getQuote.php?code=btcusdt")["data"]["body"]
    assert re.fullmatch(r"\d{10}", body["LastTime"])
    local = time.strftime("%Y-%m-%d %H:%M:%S",
                          time.gmtime(int(body["LastTime"]) + UTC8_MS // 1000))
    assert body["Time"] == local
    assert abs(int(body["LastTime"]) - time.time()) < 30


# operations ---------------------------------------------------------------------------------

def test_healthz_reports_feeds_store_connections(server: Server) -> None:
    health = get_json(server, "/healthz")
    assert health["status"] == "ok"
    assert health["feeds"][0]["state"] == "live"
    assert {"store", "connections", "subscriptions", "limits"} <= set(health)


def test_healthz_tells_each_feeds_state_since_when_and_its_updates(server: Server) -> None:
    deadline = time.monotonic() + 10
    while (feed := get_json(server, "/healthz")["feeds"][0])["updates_per_s"] == 0:
        assert time.monotonic() < deadline, feed
        time.sleep(0.1)
    assert (feed["name"], feed["kind"], feed["state"], feed["restarts"]) == \
        ("sim", "sim", "live", 0)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+08:00", feed["since"])
    assert feed["in_state_s"] >= 0 and feed["updates"] > 0 and feed["updates_per_s"] > 0
    assert "error" not in feed and "last_error" not in feed


def test_metrics_are_prometheus_text(server: Server) -> None:
    _status, headers, body = get(server, "/metrics")
    text = body.decode()
    assert headers["Content-Type"].startswith("text/plain")
    for name in ("tickwire_ws_connections", "tickwire_subscriptions", "tickwire_tasks",
                 "tickwire_deliveries_total", "tickwire_updates_total",
                 "tickwire_store_lag_seconds"):
        assert re.search(rf"^{name} [0-9.e+]+$", text, re.M), name
    assert 'tickwire_feed_state{feed="sim",kind="sim",state="live"} 1.0' in text
    for name in ("tickwire_feed_state_seconds", "tickwire_feed_updates_total",
                 "tickwire_feed_updates_per_second", "tickwire_feed_restarts_total"):
        assert re.search(rf'^{name}{{feed="sim"}} [0-9.e+]+$', text, re.M), name


__all__ = ["GENEROUS_LIMITS", "Path"]
