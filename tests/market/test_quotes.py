"""The quote object (PROTOCOL section 5): key order, JSON types, depth, trades, info, rollover."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest

from tickwire.catalogue import Catalogue, CatalogueError
from tickwire.market import Market
from tickwire.market.clock import TimeZone
from tickwire.market.quotes import QuoteState
from tickwire.models import BUY, RECENT_TRADES, SELL, Category, Product, Update

SHANGHAI = ZoneInfo("Asia/Shanghai")
TZ = TimeZone("Asia/Shanghai")

KEYS = ["StockCode", "Price", "Open", "LastClose", "High", "Low", "Time", "LastTime",
        "BP1", "BV1", "SP1", "SV1", "TotalVol", "Depth", "BS", "Info", "lastSize", "Diff",
        "DiffRate"]

CRYPTO = Product(code="btcusdt", name="比特币", category="4", precision=2, depth=5,
                 volume=True, trades=True, hours="24/7", info=[], volume_precision=5)
FOREX = Product(code="fx_sgbpusd", name="英镑美元", category="1", precision=5, depth=5,
                volume=False, trades=False, hours="24/5", info=[], volume_precision=2)
NODEPTH = Product(code="nodepth", name="无深度", category="2", precision=2, depth=0,
                  volume=True, trades=True, info=[], volume_precision=0)
FUTURE = Product(code="nf_AU0", name="沪金", category="3", precision=2, depth=5,
                 hours="mon-fri 09:00-10:15,10:30-11:30,13:30-15:00,21:00-02:30",
                 info=["TotalAmount", "LimitUp", "LimitDown"], limit_pct=0.08,
                 volume_precision=0)
INDEX = Product(code="HX_HSI", name="恒指", category="7", precision=0, depth=5,
                info=["TotalAmount"], volume_precision=0)

# 2023-05-28 15:43:51 in Shanghai, the instant of the document's WebSocket sample
SAMPLE_TS = 1_685_259_831_000


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
       ms: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=SHANGHAI).timestamp()
               * 1000) + ms


def quote(product: Product) -> QuoteState:
    return QuoteState(product, TZ)


def body(q: QuoteState) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(q.encode())
    return decoded


def book(best: float, tick: float, levels: int, sign: int) -> list[tuple[float, float]]:
    return [(best + sign * k * tick, 0.5 + k) for k in range(levels)]


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def crypto_quote() -> QuoteState:
    q = quote(CRYPTO)
    q.apply(Update("btcusdt", SAMPLE_TS - 60_000, 26689.98,
                   book(26689.98, 0.01, 10, -1), book(26689.99, 0.01, 10, +1),
                   [(26689.98, 0.1, SELL)]))
    q.apply(Update("btcusdt", SAMPLE_TS + 250, 27206.02,
                   book(27206.02, 0.01, 10, -1), book(27206.03, 0.01, 10, +1),
                   [(27206.02, 0.21, SELL), (27206.03, 0.78, BUY)]))
    return q


# ---- keys and types ---------------------------------------------------------------------

@pytest.mark.parametrize("product", [CRYPTO, FOREX, NODEPTH, FUTURE, INDEX],
                         ids=lambda p: p.code)
def test_keys_come_in_the_protocols_order(product: Product) -> None:
    q = quote(product)
    trades = [(10.0, 1.0, BUY)] if product.trades else []
    q.apply(Update(product.code, SAMPLE_TS, 10.0, [(9.99, 1.0)], [(10.01, 2.0)], trades))
    assert list(body(q)) == KEYS
    assert q.encode().startswith(b'{"StockCode":"' + product.code.encode() + b'","Price":')


def test_json_types_match_the_protocol() -> None:
    b = body(crypto_quote())
    assert isinstance(b["StockCode"], str)
    for key in ("Price", "Open", "LastClose", "High", "Low", "BP1", "BV1", "SP1", "SV1",
                "TotalVol", "lastSize", "Diff", "DiffRate"):
        assert is_number(b[key]), key
    assert isinstance(b["Time"], str)
    assert isinstance(b["LastTime"], str)
    assert isinstance(b["Depth"], dict)
    assert isinstance(b["BS"], list)
    assert b["Info"] == []


def test_time_is_utc_plus_8_and_last_time_a_10_digit_string() -> None:
    b = body(crypto_quote())
    assert b["Time"] == "2023-05-28 15:43:51"  # as in the document's sample
    assert b["LastTime"] == "1685259831"
    assert re.fullmatch(r"\d{10}", b["LastTime"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", b["Time"])
    instant = datetime.fromtimestamp(int(b["LastTime"]), tz=UTC)
    assert instant.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S") == b["Time"]


# ---- depth ------------------------------------------------------------------------------

def test_depth_lists_up_to_the_products_levels_with_numbered_keys() -> None:
    b = body(crypto_quote())
    depth = b["Depth"]
    assert list(depth) == ["Buy", "Sell"]
    assert len(depth["Buy"]) == len(depth["Sell"]) == CRYPTO.depth  # 10 given, 5 kept
    for i, level in enumerate(depth["Buy"], 1):
        assert list(level) == [f"BP{i}", f"BV{i}"]
        assert all(is_number(v) for v in level.values())
    for i, level in enumerate(depth["Sell"], 1):
        assert list(level) == [f"SP{i}", f"SV{i}"]
    assert depth["Buy"][0] == {"BP1": 27206.02, "BV1": 0.5}
    assert depth["Buy"][1] == {"BP2": 27206.01, "BV2": 1.5}
    assert depth["Sell"][4] == {"SP5": 27206.07, "SV5": 4.5}
    assert (b["BP1"], b["BV1"], b["SP1"], b["SV1"]) == (27206.02, 0.5, 27206.03, 0.5)


def test_depth_is_an_empty_array_for_a_product_without_depth() -> None:
    q = quote(NODEPTH)
    q.apply(Update("nodepth", SAMPLE_TS, 50.0, [(49.99, 3.0)], [(50.01, 4.0)],
                   [(50.01, 1.0, BUY)]))
    assert body(q)["Depth"] == []
    assert b'"Depth":[],' in q.encode()
    assert (body(q)["BP1"], body(q)["SP1"]) == (49.99, 50.01)


def test_a_book_kept_until_the_next_one() -> None:
    q = quote(CRYPTO)
    q.apply(Update("btcusdt", SAMPLE_TS, 100.0, [(99.99, 1.0)], [(100.01, 2.0)]))
    q.apply(Update("btcusdt", SAMPLE_TS + 1000, 100.01, None, None))
    b = body(q)
    assert b["Depth"] == {"Buy": [{"BP1": 99.99, "BV1": 1}], "Sell": [{"SP1": 100.01, "SV1": 2}]}


def test_without_a_book_the_touch_is_the_last_price_with_zero_volume() -> None:
    q = quote(CRYPTO)
    q.apply(Update("btcusdt", SAMPLE_TS, 100.5, None, None, [(100.5, 1.0, BUY)]))
    b = body(q)
    assert (b["BP1"], b["BV1"], b["SP1"], b["SV1"]) == (100.5, 0, 100.5, 0)
    assert b["Depth"] == {"Buy": [], "Sell": []}


def test_an_update_without_a_price_moves_the_book_and_trades_not_the_price_or_bars() -> None:
    market = Market([CRYPTO], TZ)
    assert market.apply(Update("btcusdt", SAMPLE_TS, None, [(99.0, 1.0)], [(99.5, 1.0)])) \
        is None  # a book before any price: nothing to show yet
    market.apply(Update("btcusdt", SAMPLE_TS + 1000, 100.0, None, None, [(100.0, 2.0, BUY)]))
    before = market.products["btcusdt"].series["1m"].builder.forming()
    raw = market.apply(Update("btcusdt", SAMPLE_TS + 2000, None, [(101.0, 3.0)], [(101.5, 4.0)],
                              [(101.5, 0.5, BUY)]))
    assert raw is not None
    b = json.loads(raw)
    assert (b["Price"], b["High"], b["TotalVol"]) == (100, 100, 2)  # unmoved
    assert (b["BP1"], b["BV1"], b["SP1"], b["SV1"]) == (101, 3, 101.5, 4)
    assert b["BS"][0]["price"] == 101.5 and b["lastSize"] == 0.5
    assert market.products["btcusdt"].series["1m"].builder.forming() == before
    stats = market.take_changes()[2]
    assert [code for code, _ in stats] == ["btcusdt"]  # the new book is persisted too


# ---- trades -----------------------------------------------------------------------------

def test_bs_lists_recent_trades_newest_first() -> None:
    q = quote(CRYPTO)
    for k in range(8):
        side = BUY if k % 2 else SELL
        q.apply(Update("btcusdt", SAMPLE_TS + k * 1000, 100.0 + k, None, None,
                       [(100.0 + k, 0.1 * (k + 1), side)]))
    bs = body(q)["BS"]
    assert len(bs) == RECENT_TRADES
    assert bs[0] == {"time": "15:43:58", "price": 107, "size": 0.8, "direction": BUY}
    assert bs[1] == {"time": "15:43:57", "price": 106, "size": 0.7, "direction": SELL}
    for trade in bs:
        assert list(trade) == ["time", "price", "size", "direction"]
        assert re.fullmatch(r"\d\d:\d\d:\d\d", trade["time"])
        assert trade["direction"] in (1, 2)
    assert body(q)["lastSize"] == 0.8


@pytest.mark.parametrize("trades, kept", [(True, RECENT_TRADES), (2, 2), (12, 12),
                                          (0, 0), (False, 0)])
def test_bs_carries_as_many_trades_as_the_product_keeps(trades: bool | int,
                                                        kept: int) -> None:
    q = quote(msgspec.structs.replace(CRYPTO, trades=trades))
    for k in range(20):
        q.apply(Update("btcusdt", SAMPLE_TS + k * 1000, 100.0 + k, None, None,
                       [(100.0 + k, 1.0, BUY)]))
    bs = body(q)["BS"]
    assert len(bs) == kept
    assert [t["price"] for t in bs] == [119 - k for k in range(kept)]


def test_a_trade_count_beyond_the_bound_is_a_catalogue_error() -> None:
    with pytest.raises(CatalogueError, match=r"products\['btcusdt'\]\.trades: .*0\.\.50"):
        Catalogue([Category("4", "crypto")], [msgspec.structs.replace(CRYPTO, trades=51)])


def test_bs_is_an_empty_array_for_a_product_without_trades() -> None:
    q = quote(FOREX)
    q.apply(Update("fx_sgbpusd", SAMPLE_TS, 1.33201, [(1.332, 1.0)], [(1.33202, 1.0)]))
    b = body(q)
    assert b["BS"] == []
    assert b'"BS":[],' in q.encode()
    assert b["TotalVol"] == 0
    assert b["lastSize"] == 0


# ---- info -------------------------------------------------------------------------------

def test_info_is_an_empty_array_when_the_product_has_none() -> None:
    q = crypto_quote()
    assert b'"Info":[],' in q.encode()


def test_info_has_only_the_listed_keys() -> None:
    q = quote(INDEX)
    q.apply(Update("HX_HSI", SAMPLE_TS, 25980.0, None, None, [(25980.0, 2.0, BUY)]))
    q.apply(Update("HX_HSI", SAMPLE_TS + 1, 25981.0, None, None, [(25981.0, 3.0, SELL)]))
    info = body(q)["Info"]
    assert list(info) == ["TotalAmount"]
    assert info["TotalAmount"] == 25980 * 2 + 25981 * 3


def test_limit_up_and_down_are_last_close_plus_minus_the_limit() -> None:
    q = quote(FUTURE)
    day1 = at(2024, 3, 6, 14, 0)
    q.apply(Update("nf_AU0", day1, 952.36, None, None, [(952.36, 3.0, BUY)]))
    q.apply(Update("nf_AU0", day1 + 60_000, 955.17, None, None, [(955.17, 2.0, SELL)]))
    info = body(q)["Info"]
    assert list(info) == ["TotalAmount", "LimitUp", "LimitDown"]
    # first day: the close it knows is its first price
    assert info["LimitUp"] == round(952.36 * 1.08, 2) == 1028.55
    assert info["LimitDown"] == round(952.36 * 0.92, 2) == 876.17
    assert info["TotalAmount"] == round(952.36 * 3 + 955.17 * 2, 2)
    day2 = at(2024, 3, 7, 9, 0)
    q.apply(Update("nf_AU0", day2, 960.0, None, None, [(960.0, 1.0, BUY)]))
    b = body(q)
    assert b["LastClose"] == 955.17
    assert b["Info"]["LimitUp"] == round(955.17 * 1.08, 2) == 1031.58
    assert b["Info"]["LimitDown"] == round(955.17 * 0.92, 2) == 878.76
    assert b["Info"]["TotalAmount"] == 960


def test_info_keys_follow_the_catalogues_order() -> None:
    product = msgspec.structs.replace(FUTURE, info=["LimitDown", "LimitUp"])
    q = quote(product)
    q.apply(Update("nf_AU0", SAMPLE_TS, 100.0))
    assert list(body(q)["Info"]) == ["LimitDown", "LimitUp"]
    assert body(q)["Info"] == {"LimitDown": 92, "LimitUp": 108}


# ---- Diff, DiffRate, precision ----------------------------------------------------------

def test_diff_and_diff_rate_as_in_the_documents_samples() -> None:
    b = body(crypto_quote())
    assert (b["Open"], b["Price"]) == (26689.98, 27206.02)
    assert b["Diff"] == 516.04  # the WebSocket sample
    assert b["DiffRate"] == 1.93
    q = quote(CRYPTO)
    q.apply(Update("btcusdt", SAMPLE_TS, 91058.94))
    q.apply(Update("btcusdt", SAMPLE_TS + 1000, 90722.15))
    b = body(q)
    assert b["Diff"] == -336.79  # the getQuote sample
    assert b["DiffRate"] == -0.37


def test_diff_is_rounded_to_the_products_precision() -> None:
    q = quote(FOREX)
    q.apply(Update("fx_sgbpusd", SAMPLE_TS, 1.33201))
    q.apply(Update("fx_sgbpusd", SAMPLE_TS + 1, 1.33298))
    b = body(q)
    assert b["Diff"] == 0.00097
    assert b["DiffRate"] == round(0.00097 / 1.33201 * 100, 2) == 0.07


def test_no_float_noise_on_the_wire() -> None:
    q = quote(CRYPTO)
    q.apply(Update("btcusdt", SAMPLE_TS, 27206.019999999997,
                   [(1.1 + 2.2, 0.1 + 0.2)], [(27206.029999999995, 0.7000000000000001)],
                   [(27206.019999999997, 0.1, BUY)]))
    for _ in range(2):
        q.apply(Update("btcusdt", SAMPLE_TS + 1, 27206.02, None, None,
                       [(27206.02, 0.1, BUY)]))
    raw = q.encode()
    assert b'"Price":27206.02,' in raw
    assert b'"BP1":3.3,"BV1":0.3,"SP1":27206.03,"SV1":0.7,' in raw
    assert b'"TotalVol":0.3,' in raw
    assert not re.search(rb"\d\.\d*(?:0000|9999)\d", raw), raw


def test_integral_values_are_written_as_integers() -> None:
    q = quote(INDEX)
    q.apply(Update("HX_HSI", SAMPLE_TS, 27150.0, [(27149.0, 3.0)], [(27151.0, 4.0)],
                   [(27150.0, 2.0, BUY)]))
    raw = q.encode()
    assert b'"Price":27150,"Open":27150,' in raw
    assert b'"BP1":27149,"BV1":3,"SP1":27151,"SV1":4,"TotalVol":2,' in raw
    assert b'"Diff":0,"DiffRate":0' in raw


def test_prices_are_rounded_to_the_products_precision() -> None:
    q = quote(FOREX)
    q.apply(Update("fx_sgbpusd", SAMPLE_TS, 1.234567))
    assert body(q)["Price"] == 1.23457
    assert q.stats.price == 1.23457


# ---- the trading day --------------------------------------------------------------------

def test_day_rollover_at_shanghai_midnight() -> None:
    q = quote(CRYPTO)
    q.apply(Update("btcusdt", at(2024, 3, 6, 10), 100.0, None, None, [(100.0, 1.0, BUY)]))
    q.apply(Update("btcusdt", at(2024, 3, 6, 15), 110.0, None, None, [(110.0, 2.0, BUY)]))
    q.apply(Update("btcusdt", at(2024, 3, 6, 20), 90.0, None, None, [(90.0, 1.0, SELL)]))
    q.apply(Update("btcusdt", at(2024, 3, 7) - 1, 105.0, None, None, [(105.0, 1.0, BUY)]))
    b = body(q)
    assert (b["Open"], b["High"], b["Low"], b["Price"], b["TotalVol"]) == (100, 110, 90, 105, 5)
    midnight = at(2024, 3, 7)
    assert midnight == int(datetime(2024, 3, 6, 16, tzinfo=UTC).timestamp() * 1000)
    q.apply(Update("btcusdt", midnight, 106.0, None, None, [(106.0, 0.5, BUY)]))
    b = body(q)
    assert b["LastClose"] == 105
    assert (b["Open"], b["High"], b["Low"], b["Price"]) == (106, 106, 106, 106)
    assert b["TotalVol"] == 0.5
    assert b["Diff"] == 0
    assert b["Time"] == "2024-03-07 00:00:00"


def test_utc_midnight_is_not_a_new_day() -> None:
    q = quote(CRYPTO)
    utc_midnight = int(datetime(2024, 3, 7, tzinfo=UTC).timestamp() * 1000)  # 08:00 local
    q.apply(Update("btcusdt", utc_midnight - 1000, 100.0, None, None, [(100.0, 1.0, BUY)]))
    q.apply(Update("btcusdt", utc_midnight + 1000, 101.0, None, None, [(101.0, 1.0, BUY)]))
    b = body(q)
    assert (b["Open"], b["LastClose"], b["TotalVol"]) == (100, 100, 2)


def test_a_quiet_day_between_keeps_the_last_price_as_last_close() -> None:
    q = quote(CRYPTO)
    q.apply(Update("btcusdt", at(2024, 3, 6, 12), 100.0))
    q.apply(Update("btcusdt", at(2024, 3, 8, 12), 120.0))  # nothing on the 7th
    b = body(q)
    assert (b["LastClose"], b["Open"], b["Diff"], b["DiffRate"]) == (100, 120, 0, 0)


# ---- Market -----------------------------------------------------------------------------

def test_market_keeps_one_quote_per_product() -> None:
    market = Market([CRYPTO, FOREX], TZ)
    first = market.apply(Update("btcusdt", SAMPLE_TS, 27206.02, None, None,
                                [(27206.02, 0.21, BUY)]))
    assert first is not None
    assert market.products["btcusdt"].body == first
    assert first == market.products["btcusdt"].quote.encode()
    assert list(json.loads(first)) == KEYS
    assert market.apply(Update("nosuch", SAMPLE_TS, 1.0)) is None
    assert market.apply(Update("fx_sgbpusd", SAMPLE_TS, 1.3320, None, None), encode=False) \
        is None
    assert market.products["fx_sgbpusd"].body is None  # encoded when read
    assert market.body("fx_sgbpusd") == market.products["fx_sgbpusd"].quote.encode()
    assert json.loads(market.products["fx_sgbpusd"].body or b"")["Price"] == 1.332
    assert market.body("nosuch") is None


def test_market_feeds_the_same_price_to_quote_and_bars() -> None:
    market = Market([FOREX], TZ)
    ts = at(2024, 3, 6, 10, 0, 5)
    market.apply(Update("fx_sgbpusd", ts, 1.2345678))
    forming = market.products["fx_sgbpusd"].series["1m"].builder.forming()
    assert forming == (at(2024, 3, 6, 10), 1.23457, 1.23457, 1.23457, 1.23457, 0.0)
    assert json.loads(market.products["fx_sgbpusd"].body or b"")["Price"] == 1.23457


def test_a_saved_quote_restores_whole_book_and_trades_included() -> None:
    """A restart serves the same body as before it, before the feed's next update."""
    from tickwire.catalogue import load_catalogue
    from tickwire.market.clock import TimeZone as Zone
    from tickwire.market.quotes import DayStats, QuoteState
    from tickwire.models import Update as Tick

    product = load_catalogue().products["btcusdt"]
    zone = Zone("Asia/Shanghai")
    before = QuoteState(product, zone)
    for i in range(8):
        before.apply(Tick("btcusdt", 1_700_000_000_000 + i * 1000, 100.0 + i,
                          [(100.0 + i - j * 0.01, 1.5 + j) for j in range(10)],
                          [(100.01 + i + j * 0.01, 2.5 + j) for j in range(10)],
                          [(100.0 + i, 0.25, 2 if i % 2 else 1)]))
    body = before.encode()
    stored = msgspec.json.decode(msgspec.json.encode(before.saved()), type=DayStats)
    after = QuoteState(product, zone)
    after.restore(stored)
    assert after.encode() == body
    assert after.stats.bids == [] and before.stats.bids == []  # only the saved copy holds them


# ---- the encoder against a plain reference ------------------------------------------------

def reference_body(q: QuoteState) -> bytes:
    """The body built the plain way: a dict in wire order, every number through `num`."""
    from tickwire.models import num

    s, p = q.stats, q.product
    dec, vdec = p.precision, p.volume_precision

    def levels(side: list[tuple[float, float]], key: str) -> list[dict[str, float | int]]:
        return [{f"{key}P{i}": num(price, dec), f"{key}V{i}": num(size, vdec)}
                for i, (price, size) in enumerate(side[:p.depth or 1], 1)]

    buy, sell = levels(q._bid_levels, "B"), levels(q._ask_levels, "S")
    diff = round(s.price - s.open, dec)
    return msgspec.json.encode({
        "StockCode": p.code, "Price": num(s.price, dec), "Open": num(s.open, dec),
        "LastClose": num(s.last_close, dec), "High": num(s.high, dec), "Low": num(s.low, dec),
        "Time": TZ.format(s.ts), "LastTime": str(s.ts // 1000),
        "BP1": buy[0]["BP1"] if buy else num(s.price, dec), "BV1": buy[0]["BV1"] if buy else 0,
        "SP1": sell[0]["SP1"] if sell else num(s.price, dec), "SV1": sell[0]["SV1"] if sell else 0,
        "TotalVol": num(s.volume, vdec),
        "Depth": {"Buy": buy, "Sell": sell} if p.depth else [],
        "BS": [{"time": TZ.format_hms(ts), "price": num(price, dec), "size": num(size, vdec),
                "direction": side} for ts, price, size, side in q._trades] if p.trades else [],
        "Info": q._info() or [],
        "lastSize": num(s.last_size, vdec), "Diff": num(diff, dec),
        "DiffRate": num(diff / s.open * 100, 2) if s.open else 0,
    })


def noisy(rng: Any, value: float) -> float:
    """`value`, now and then with float noise such as 27206.019999999997."""
    return value + rng.choice([0.0, 0.0, 1e-9, -1e-9])


@pytest.mark.parametrize("code", ["fx_seurusd", "hf_CL", "hf_HG", "nf_IF0", "btcusdt", "HX_HSI"])
def test_the_encoded_body_equals_a_plain_encoding(code: str) -> None:
    """Over random updates (noisy numbers, whole numbers, empty and short books, several
    trades an update, a day boundary), every body is byte for byte the plain encoding."""
    import random

    from tickwire.catalogue import load_catalogue

    product = load_catalogue().products[code]  # one of each kind of depth, trades and Info
    q = QuoteState(product, TZ)
    rng = random.Random(code)
    tick = 10.0 ** -product.precision
    ts = at(2024, 3, 6, 23, 58)
    for _ in range(400):
        ts += rng.randrange(1, 5_000)
        mid = round(product.price * rng.uniform(0.97, 1.03) / tick) * tick
        if rng.random() < 0.1:
            mid = float(round(mid))  # a whole number, written as an int
        bids = [(noisy(rng, mid - i * tick), noisy(rng, round(rng.uniform(0, 50), 2)))
                for i in range(rng.choice([0, 1, 3, 10]))]
        asks = [(noisy(rng, mid + (i + 1) * tick), noisy(rng, float(rng.randrange(1, 9))))
                for i in range(rng.choice([0, 2, 10]))]
        trades = [(noisy(rng, mid), noisy(rng, round(rng.uniform(0.001, 5), 3)),
                   rng.choice([BUY, SELL])) for _ in range(rng.choice([0, 1, 1, 3]))]
        q.apply(Update(product.code, ts, noisy(rng, mid), bids or None, asks or None, trades))
        assert q.encode() == reference_body(q)
