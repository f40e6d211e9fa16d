"""What one server process makes of its config: the catalogue of the day, start-up warnings."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tickwire.config import load_config
from tickwire.server import load_products, loopback_only_warning

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_monthly_contracts_are_named_after_the_current_month() -> None:
    config = load_config(None, environ={})
    december = load_products(config, datetime(2026, 12, 2, 10, 0, tzinfo=SHANGHAI))
    assert december.products["HX_HSI"].name == "恒指2612"
    assert december.products["TW_TXF"].name == "台指期2612【日】"
    assert december.products["btcusdt"].name == "比特币"  # not a dated contract
    january = load_products(config, datetime(2027, 1, 1, 0, 0, tzinfo=SHANGHAI))
    assert january.products["HX_MHI"].name == "小恒指2701"


def test_the_codes_deployed_clients_default_to_are_in_the_catalogue() -> None:
    products = load_products(load_config(None, environ={})).products
    assert (products["RT_AU"].name, products["RT_AU"].category) == ("融通金黄金", "3")
    assert (products["RT_AG"].name, products["RT_AG"].precision) == ("融通金白银", 2)


@pytest.mark.parametrize(("host", "allow", "warned"), [
    ("127.0.0.1", None, False),
    ("::1", None, False),
    ("localhost", None, False),
    ("0.0.0.0", None, True),
    ("::", None, True),
    ("192.168.1.5", None, True),
    ("0.0.0.0", ["127.0.0.0/8", "10.0.0.0/8"], False),
])
def test_listening_beyond_loopback_with_a_loopback_allow_list_is_warned(
        host: str, allow: list[str] | None, warned: bool, tmp_path: Path) -> None:
    overrides: dict[str, object] = {"server.host": host, "server.data_dir": str(tmp_path)}
    if allow is not None:
        overrides["access.allow"] = allow
    warning = loopback_only_warning(load_config(None, overrides, environ={}))
    assert (warning is not None) == warned
    if warning:
        assert host in warning and "tickwire allow add" in warning and str(tmp_path) in warning
