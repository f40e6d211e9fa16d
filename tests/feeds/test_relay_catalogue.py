"""A relay's products: the upstream's lists over the catalogue, kept for a start while the
upstream is down."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import http_stub
from tickwire.catalogue import load_catalogue
from tickwire.config import RelayFeedConfig, SimFeedConfig
from tickwire.feeds import factory
from tickwire.feeds.factory import RELAY_DECIMALS, with_feed_products
from tickwire.feeds.upstream import UpstreamError

CATEGORIES = [{"id": "4", "name": "Crypto"}, {"id": "9", "name": "Stocks"}]
SYMBOLS = {
    "4": [{"code": "btcusdt", "name": "Bitcoin"}, {"code": "bad code!", "name": "?"}],
    "9": [{"code": "acme", "name": "ACME Corp"}, {"code": "ethusdt", "name": "Ether"}],
}


def answer(path: str) -> tuple[int, bytes]:
    if path.startswith("/getCategory.php"):
        data: object = {"list": CATEGORIES}
    elif path.startswith("/getSymbolList.php"):
        category = path.split("category=")[1].split("&")[0]
        page = int(path.split("page=")[1].split("&")[0])
        items = SYMBOLS.get(category, []) if page == 1 else []
        data = {"list": items, "total": len(SYMBOLS.get(category, []))}
    else:
        return 404, b'{"code":404,"msg":"no such path","data":null}'
    return 200, json.dumps({"code": 200, "msg": "success", "data": data}).encode()


@pytest.fixture(autouse=True)
def asked_afresh() -> Iterator[None]:
    factory._listed.cache_clear()  # each test's upstream is asked again
    yield
    factory._listed.cache_clear()


def test_the_upstreams_lists_over_the_catalogue(tmp_path: Path) -> None:
    shipped = load_catalogue(None)
    with http_stub(answer) as where:
        relay = RelayFeedConfig(http_url=f"http://{where}")
        catalogue = with_feed_products([relay], shipped, tmp_path, frozenset({"ethusdt"}))
    assert [(c.id, c.name) for c in catalogue.categories] == [("4", "Crypto"),
                                                              ("9", "Stocks")]
    assert set(catalogue.products) == {"btcusdt", "acme", "ethusdt"}  # "bad code!" left out
    btc = catalogue.products["btcusdt"]
    assert (btc.name, btc.category) == ("Bitcoin", "4")
    assert btc.precision == shipped.products["btcusdt"].precision  # what the catalogue knows
    acme = catalogue.products["acme"]
    assert (acme.category, acme.precision, acme.hours) == ("9", RELAY_DECIMALS, "24/7")
    assert catalogue.products["ethusdt"] == shipped.products["ethusdt"]  # pinned


def test_beside_a_simulator_the_catalogue_keeps_its_other_products(tmp_path: Path) -> None:
    shipped = load_catalogue(None)
    with http_stub(answer) as where:
        relay = RelayFeedConfig(http_url=f"http://{where}", codes=["acme"])
        catalogue = with_feed_products([SimFeedConfig(), relay], shipped, tmp_path)
    assert "acme" in catalogue.products and "HX_HSI" in catalogue.products
    assert {c.id for c in catalogue.categories} >= {c.id for c in shipped.categories} | {"9"}


def test_the_lists_are_kept_for_a_start_while_the_upstream_is_down(tmp_path: Path) -> None:
    shipped = load_catalogue(None)
    with http_stub(answer) as where:
        relay = RelayFeedConfig(http_url=f"http://{where}")
        first = with_feed_products([relay], shipped, tmp_path)
    factory._listed.cache_clear()
    again = with_feed_products([relay], shipped, tmp_path)  # the stub is gone
    assert set(again.products) == set(first.products)
    factory._listed.cache_clear()
    with pytest.raises(UpstreamError, match=f"cannot list the products of http://{where}"):
        with_feed_products([relay], shipped, tmp_path / "elsewhere")
