"""The guards' pure parts: addresses, the allow-list, forwarded-for, budgets, refusals."""

from __future__ import annotations

import time

import pytest

from tickwire.engine.base import AllowSnapshot, StoredAllow
from tickwire.gateway.access import AllowList, forwarded_client, parse_address, parse_network
from tickwire.gateway.guards import Refusals
from tickwire.gateway.wsconn import MessageBudget


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


def snapshot(version: int, *cidrs: str) -> AllowSnapshot:
    return AllowSnapshot(version, [StoredAllow(c, f"note {c}", i) for i, c in enumerate(cidrs)])


def test_allow_list_takes_the_stored_entries_beside_the_config_ones() -> None:
    allow = AllowList(["127.0.0.1"])
    assert allow.apply(snapshot(1, "203.0.113.0/24", "2001:db8::/32"))
    assert allow.allows("203.0.113.77") and allow.allows("2001:db8::5")
    assert [(e.cidr, e.source) for e in allow.entries()] == [
        ("127.0.0.1/32", "config"), ("203.0.113.0/24", "admin"), ("2001:db8::/32", "admin")]
    found = allow.find("203.0.113.0/24")
    assert found is not None and found.note == "note 203.0.113.0/24"
    assert allow.apply(snapshot(2))
    assert not allow.allows("203.0.113.77") and allow.allows("127.0.0.1")


def test_a_config_entry_stays_whatever_the_store_says() -> None:
    allow = AllowList(["127.0.0.1"])
    allow.apply(snapshot(1, "127.0.0.1/32"))
    allow.apply(snapshot(2))
    assert allow.allows("127.0.0.1")
    entry = allow.find("127.0.0.1/32")
    assert entry is not None and entry.source == "config"


def test_a_stale_snapshot_never_undoes_a_newer_one() -> None:
    allow = AllowList([])
    assert allow.apply(snapshot(5, "10.1.0.0/16"))
    assert not allow.apply(snapshot(4))  # read before the addition, applied after it
    assert not allow.apply(snapshot(5))
    assert allow.allows("10.1.2.3")
    assert allow.apply(snapshot(6))  # the removal
    assert not allow.apply(snapshot(5, "10.1.0.0/16"))
    assert not allow.allows("10.1.2.3")


def test_an_entry_the_store_holds_but_cannot_parse_is_skipped() -> None:
    allow = AllowList([])
    allow.apply(snapshot(1, "not-a-range", "10.0.0.0/8"))
    assert allow.allows("10.2.3.4") and [e.cidr for e in allow.entries()] == ["10.0.0.0/8"]


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
