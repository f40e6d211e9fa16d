"""`/healthz` status from the ingest's report: starting, ok, or degraded while serving."""

from __future__ import annotations

import pytest

from tickwire.engine.base import IngestStatus
from tickwire.gateway.ops import _status


@pytest.mark.parametrize(("ingest", "status"), [
    (None, "starting"),
    (IngestStatus(ready=False), "starting"),
    (IngestStatus(ready=True, feeds=[{"state": "live"}]), "ok"),
    (IngestStatus(ready=True, feeds=[{"state": "live"}, {"state": "down"}]), "degraded"),
    (IngestStatus(ready=True, feeds=[{"state": "finished"}], store_ok=False), "degraded"),
    (IngestStatus(ready=True, feeds=[{"state": "live"}], record_ok=False), "degraded"),
])
def test_health_status(ingest: IngestStatus | None, status: str) -> None:
    assert _status(ingest) == status
