"""The feed factory: each product has one feed, and a config error names both claimants."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickwire.catalogue import load_catalogue
from tickwire.config import ConfigError, SimFeedConfig
from tickwire.feeds.base import FeedState
from tickwire.feeds.factory import build_feeds, claims
from tickwire.market.clock import TimeZone
from tickwire.market.hours import TradingHours

CATALOGUE = load_catalogue(None)
NOWHERE = Path("/nonexistent-data-dir")  # no relay here: the data dir is never used
TZ = TimeZone("Asia/Shanghai")


def hours(code: str) -> TradingHours:
    return TradingHours(CATALOGUE.products[code].hours, TZ)


def test_a_feed_without_codes_takes_every_product_no_other_feed_names() -> None:
    split = claims([SimFeedConfig(), SimFeedConfig(codes=["btcusdt", "ethusdt"])], CATALOGUE,
                   NOWHERE)
    assert split[1] == ["btcusdt", "ethusdt"]
    assert set(split[0]) == set(CATALOGUE.products) - {"btcusdt", "ethusdt"}


@pytest.mark.parametrize(("configs", "message"), [
    ([SimFeedConfig(codes=["btcusdt"]), SimFeedConfig(codes=["ethusdt", "btcusdt"])],
     "feeds[0] and feeds[1] both drive 'btcusdt'"),
    ([SimFeedConfig(), SimFeedConfig(seed=2)], "feeds[0] and feeds[1] both drive every product"),
    ([SimFeedConfig(codes=["nosuch"])], "feeds[0].codes: unknown code 'nosuch'"),
])
def test_overlapping_or_unknown_claims_are_config_errors(configs: list[SimFeedConfig],
                                                         message: str) -> None:
    with pytest.raises(ConfigError) as info:
        claims(configs, CATALOGUE, NOWHERE)
    assert message in str(info.value)


def test_build_feeds_names_each_feed_and_starts_connecting() -> None:
    feeds = build_feeds([SimFeedConfig(codes=["btcusdt"]), SimFeedConfig(rate=1.0)],
                        CATALOGUE, TZ, hours, NOWHERE)
    assert [f.name for f in feeds] == ["sim-0", "sim-1"]
    assert feeds[0].codes == ["btcusdt"] and "btcusdt" not in feeds[1].codes
    assert all(f.state is FeedState.CONNECTING for f in feeds)
    only = build_feeds([SimFeedConfig()], CATALOGUE, TZ, hours, NOWHERE)
    assert only[0].name == "sim" and len(only[0].codes) == len(CATALOGUE.products)
