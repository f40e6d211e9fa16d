"""Feeds under supervision: a feed that raises is logged, shown `down` with its error and
restarted after a capped, jittered backoff; it is never left dead."""

from __future__ import annotations

import asyncio
import logging
import time

from tickwire.client.backoff import Backoff
from tickwire.feeds.base import Feed, FeedState, Sink

log = logging.getLogger("tickwire.feeds")


class FeedRunner:
    """Runs one feed until cancelled, restarting it whenever it fails."""

    def __init__(self, feed: Feed, sink: Sink, backoff: Backoff | None = None) -> None:
        self.feed = feed
        self.sink = sink
        self.backoff = backoff or Backoff(initial=1.0, maximum=30.0, reset_after=60.0)
        self.error: str | None = None
        self.restarts = 0
        self.been_live = False
        """The feed has been live (or finished) at least once: the server may report ready."""

    @property
    def state(self) -> FeedState:
        return self.feed.state

    def status(self) -> dict[str, object]:
        down = self.feed.state is FeedState.DOWN and self.error is not None
        error = {"error": self.error} if down else {}
        return {"name": self.feed.name, "state": str(self.feed.state), **self.feed.status(),
                "restarts": self.restarts, **error}

    def settled(self) -> bool:
        """Live or finished now, or once before (a restart does not make a server unready)."""
        if self.feed.state in (FeedState.LIVE, FeedState.FINISHED):
            self.been_live = True
        return self.been_live

    async def run(self) -> None:
        feed = self.feed
        while True:
            began = time.monotonic()
            try:
                await feed.run(self.sink)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.settled()
                self._failed(exc, time.monotonic() - began)
            else:
                feed.state = FeedState.FINISHED
                self.settled()
                log.info("feed finished", extra={"feed": feed.name})
                return
            delay = self.backoff.next()
            log.info("restarting feed", extra={"feed": feed.name, "in_s": round(delay, 1)})
            await asyncio.sleep(delay)
            self.restarts += 1

    def _failed(self, exc: Exception, ran_for: float) -> None:
        feed = self.feed
        if ran_for > self.backoff.reset_after:
            self.backoff.reset()
        first = self.backoff.attempts == 0  # a new outage, not a retry failing again
        feed.state = FeedState.DOWN
        self.error = f"{type(exc).__name__}: {exc}"[:300]
        if first:  # the traceback once per outage; after that one line per failure
            log.error("feed failed", exc_info=exc, extra={"feed": feed.name})
        else:
            log.error("feed failed again", extra={"feed": feed.name, "error": self.error})
