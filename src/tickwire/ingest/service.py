"""The ingest as a running service: its feeds under supervision, the hand-over of changes
to the store writer, and its status reported through the engine."""

from __future__ import annotations

import asyncio
import logging
from zoneinfo import ZoneInfo

from tickwire.engine.base import IngestStatus
from tickwire.feeds.base import Feed
from tickwire.ingest.pipeline import Ingest
from tickwire.ingest.supervisor import FeedRunner

log = logging.getLogger("tickwire.ingest")

PERSIST_EVERY = 0.25
"""Seconds between hand-overs of the market's changes to the store writer, which commits
them at once: a `kill -9` loses about this much (plus one commit) of bars."""


class IngestService:
    def __init__(self, ingest: Ingest, feeds: list[Feed]) -> None:
        self.ingest = ingest
        zone = ZoneInfo(ingest.market.tz.name)
        self.runners = [FeedRunner(feed, ingest.sink(feed.codes), zone=zone) for feed in feeds]
        self.ready = False
        self._tasks: list[asyncio.Task[None]] = []

    def status(self) -> IngestStatus:
        ingest, writer, recorder = self.ingest, self.ingest.writer, self.ingest.recorder
        return IngestStatus(
            ready=self.ready, feeds=[r.status() for r in self.runners],
            store=writer.health(), store_ok=writer.ok,
            record=recorder.health() if recorder else {"state": "off"},
            record_ok=recorder.ok if recorder else True,
            updates_in=ingest.updates_in, unknown=ingest.unknown)

    async def start(self) -> None:
        if self.ingest.recorder is not None:
            self.ingest.recorder.start()
        self.ingest.engine.report(self.status())
        for runner in self.runners:
            self._tasks.append(asyncio.create_task(runner.run(), name=runner.feed.name))
        self._tasks.append(asyncio.create_task(self._persist_forever(), name="persist"))
        self._tasks.append(asyncio.create_task(self._become_ready(), name="ready"))

    async def _persist_forever(self) -> None:
        while True:
            await asyncio.sleep(PERSIST_EVERY)
            self.ingest.persist()
            self.ingest.engine.report(self.status())

    async def _become_ready(self) -> None:
        """Ready once every feed is live (or finished), with what they filled handed over."""
        while not all(r.settled() for r in self.runners):
            await asyncio.sleep(0.05)
        self.ingest.persist()
        self.ready = True
        self.ingest.engine.report(self.status())
        log.info("ready")

    async def stop(self) -> None:
        """Stop the feeds, hand over the last changes and write them; end the recording."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self.ingest.persist()
        await asyncio.to_thread(self.ingest.writer.close)
        if self.ingest.recorder is not None:
            await asyncio.to_thread(self.ingest.recorder.close)
