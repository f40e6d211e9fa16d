"""The guards' pure parts: addresses, the allow-list, forwarded-for, limits and budgets."""

from __future__ import annotations

import time

import pytest

from tickwire.errors import RateLimited
from tickwire.gateway.guards import (
    AllowList,
    MessageBudget,
    RateLimiter,
    Refusals,
    forwarded_client,
    parse_address,
    parse_network,
)


def test_v4_mapped_v6_is_read_as_v4() -> None:
    assert str(parse_address("::ffff:203.0.113.9")) == "203.0.113.9"
    assert str(parse_network("::ffff:10.0.0.0/104")) == "10.0.0.0/8"
    assert parse_address("not an ip") is None
    assert str(parse_address("[2001:db8::1]")) == "2001:db8::1"


def test_allow_list_v4_v6_and_mapped() -> None:
    allow = AllowList(["127.0.0.0/8", "::1", "2001:db8::/32", "198.51.100.7"])
    assert allow.allows("127.4.5.6") and allow.allows("::ffff:127.0.0.1")
    assert allow.allows("::1") and allow.allows("2001:db8:1::5")
    assert allow.allows("198.51.100.7") and not allow.allows("198.51.100.8")
    assert not allow.allows("2001:db9::1") and not allow.allows("garbage")


def test_allow_list_run_time_entries() -> None:
    allow = AllowList(["127.0.0.1"])
    entry = allow.add("203.0.113.0/24", "office", 5)
    assert entry.cidr == "203.0.113.0/24" and entry.source == "admin"
    assert allow.allows("203.0.113.77")
    assert allow.add("127.0.0.1", "again", 6).source == "config"  # config entry unchanged
    removed = allow.remove("203.0.113.0/24")
    assert removed is not None and not allow.allows("203.0.113.77")
    kept = allow.remove("127.0.0.1")
    assert kept is not None and kept.source == "config" and allow.allows("127.0.0.1")
    assert allow.remove("10.0.0.0/8") is None
    with pytest.raises(ValueError):
        allow.add("10.0.0.0/33", "", 0)


def test_allow_list_follows_the_store() -> None:
    allow = AllowList(["127.0.0.1"])
    allow.sync([("10.1.0.0/16", "a", 1)])
    assert allow.allows("10.1.2.3")
    allow.sync([])
    assert not allow.allows("10.1.2.3") and allow.allows("127.0.0.1")


TRUSTED = [parse_network("10.0.0.1"), parse_network("10.0.0.2")]


@pytest.mark.parametrize(("peer", "headers", "client"), [
    ("203.0.113.5", ["1.2.3.4"], "203.0.113.5"),            # not a proxy: header ignored
    ("10.0.0.1", ["1.2.3.4"], "1.2.3.4"),
    ("10.0.0.1", ["6.6.6.6, 1.2.3.4"], "1.2.3.4"),          # right-most untrusted wins
    ("10.0.0.1", ["1.2.3.4, 10.0.0.2"], "1.2.3.4"),         # a chain of trusted proxies
    ("10.0.0.1", ["1.2.3.4", "10.0.0.2"], "1.2.3.4"),       # several headers
    ("10.0.0.1", ["junk, 10.0.0.2"], "10.0.0.2"),           # garbage: stop at the last good
    ("10.0.0.1", [], "10.0.0.1"),
    ("::ffff:10.0.0.1", ["::ffff:1.2.3.4"], "1.2.3.4"),
])
def test_forwarded_for(peer: str, headers: list[str], client: str) -> None:
    assert forwarded_client(peer, headers, TRUSTED) == client


def test_rate_limiter_counts_per_key_in_a_sliding_second() -> None:
    limiter = RateLimiter()
    for _ in range(3):
        limiter.check([("ip", "quote", "a")], 3, ["a"])
    with pytest.raises(RateLimited) as refused:
        limiter.check([("ip", "quote", "a"), ("ip", "quote", "b")], 3, ["a", "b"])
    assert "a" in refused.value.msg and 0 < refused.value.retry_after <= 1
    limiter.check([("ip", "quote", "b")], 3, ["b"])  # the refused request counted for nobody
    limiter.check([("other", "quote", "a")], 3, ["a"])


def test_message_budget_drops_over_the_rate_and_tracks_a_flood() -> None:
    budget = MessageBudget(10)
    now = time.monotonic()
    taken = [budget.take(now) for _ in range(15)]
    assert taken.count(True) == 10 and budget.over_since == now
    assert budget.take(now + 0.5)  # refilled a little; still in the flood
    assert budget.over_since == now
    assert budget.take(now + 3.0) and budget.over_since == 0.0  # a quiet second ends it


def test_refusals_log_once_a_minute_per_client(caplog: pytest.LogCaptureFixture) -> None:
    refusals = Refusals()
    with caplog.at_level("WARNING"):
        for _ in range(5):
            refusals.note("rate_limited", "1.2.3.4", "x")
        refusals.note("rate_limited", "5.6.7.8", "x")
    assert refusals.counts["rate_limited"] == 6
    assert len([r for r in caplog.records if r.msg == "refused"]) == 2
