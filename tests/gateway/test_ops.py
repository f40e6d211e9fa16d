"""`/healthz` status from the ingest's report: starting, ok, or degraded while serving;
the feeds in `/metrics`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from tickwire.engine.base import IngestStatus
from tickwire.gateway.ops import feed_metrics, state_of


@pytest.mark.parametrize(("ingest", "status"), [
    (None, "starting"),
    (IngestStatus(ready=False), "starting"),
    (IngestStatus(ready=True, feeds=[{"state": "live"}]), "ok"),
    (IngestStatus(ready=True, feeds=[{"state": "live"}, {"state": "down"}]), "degraded"),
    (IngestStatus(ready=True, feeds=[{"state": "finished"}], store_ok=False), "degraded"),
    (IngestStatus(ready=True, feeds=[{"state": "live"}], record_ok=False), "degraded"),
])
def test_health_status(ingest: IngestStatus | None, status: str) -> None:
    assert state_of(ingest, {"kind": "memory"}) == status


def test_an_engine_not_well_is_degraded_once_ready() -> None:
    ready = IngestStatus(ready=True, feeds=[{"state": "live"}])
    assert state_of(ready, {"kind": "redis", "ok": False}) == "degraded"
    assert state_of(ready, {"kind": "redis", "ok": True}) == "ok"
    assert state_of(None, {"kind": "redis", "ok": False}) == "starting"


def feed_metrics_text(feeds: list[dict[str, object]]) -> str:
    class Feeds:
        def collect(self) -> Iterator[Metric]:
            return feed_metrics(feeds)

    registry = CollectorRegistry()
    registry.register(Feeds())  # type: ignore[arg-type]
    return generate_latest(registry).decode()


def test_feed_metrics_state_per_feed_and_counts() -> None:
    text = feed_metrics_text([
        {"name": "sim-0", "kind": "sim", "state": "live", "in_state_s": 12.5, "updates": 100,
         "updates_per_s": 9.5, "restarts": 0},
        {"name": "relay-1", "kind": "relay", "state": "down", "in_state_s": 3.0,
         "error": "upstream unreachable", "updates": 7, "updates_per_s": 0.0, "restarts": 2},
    ])
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    for feed, kind, now in (("sim-0", "sim", "live"), ("relay-1", "relay", "down")):
        for state in ("connecting", "live", "down", "finished"):
            assert value("tickwire_feed_state", feed=feed, kind=kind, state=state) == \
                (1.0 if state == now else 0.0)
    assert value("tickwire_feed_state_seconds", feed="relay-1") == 3.0
    assert value("tickwire_feed_updates_total", feed="sim-0") == 100
    assert value("tickwire_feed_updates_per_second", feed="sim-0") == 9.5
    assert value("tickwire_feed_restarts_total", feed="relay-1") == 2
    assert "# TYPE tickwire_feed_restarts_total counter" in text
    assert "upstream" not in text  # no error text in a label: a series per message


def test_feed_metrics_without_feeds_are_declared_empty() -> None:
    text = feed_metrics_text([])
    assert "# TYPE tickwire_feed_state gauge" in text and "tickwire_feed_state{" not in text
