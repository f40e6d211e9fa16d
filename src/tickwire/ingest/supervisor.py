"""Feeds under supervision: a feed that raises is logged, shown `down` with its error and
restarted after a capped, jittered backoff; it is never left dead.

The runner also keeps what `/healthz` and `/metrics` tell of each feed: since when it is in
its state, its last error and when that was, its updates in all and per second, restarts.
A feed changes its own state (live, or down with an `error` while it keeps trying): the
runner notes such a change when it next looks, at each status report (`status()`, every
0.25 s in a server: a state held for less may go unseen), and the changes it makes itself
(down on a raise, finished) at once. A feed that fails again at each restart, before it
was seen in another state, stays down since its first failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, tzinfo
from typing import Protocol

from tickwire.client.backoff import Backoff
from tickwire.feeds.base import Feed, FeedState, Sink
from tickwire.ingest.rate import RollingRate
from tickwire.logs import local_time

log = logging.getLogger("tickwire.feeds")

ERROR_CHARS = 300
"""An error is cut to this many characters."""


class Clock(Protocol):
    """Where the runner reads the time: the `time` module, or a fake one in tests."""

    def monotonic(self) -> float: ...

    def time(self) -> float: ...


class CountingSink(Sink, Protocol):
    updates: int
    """Updates the feed has handed over so far (`publish`)."""


class FeedRunner:
    """Runs one feed until cancelled, restarting it whenever it fails."""

    def __init__(self, feed: Feed, sink: CountingSink, backoff: Backoff | None = None, *,
                 zone: tzinfo = UTC, clock: Clock = time) -> None:
        self.feed = feed
        self.sink = sink
        self.backoff = backoff or Backoff(initial=1.0, maximum=30.0, reset_after=60.0)
        self.zone = zone
        """The service time zone, which the times of `status()` are written in."""
        self._clock = clock
        self.restarts = 0
        self.been_live = False
        """The feed has been live (or finished) at least once: the server may report ready."""
        self._raised: str | None = None
        """What the feed raised, until it is seen in a state other than down."""
        self._seen = feed.state
        self._since = (clock.monotonic(), clock.time())
        """When the feed entered `_seen`: (monotonic, Unix) seconds."""
        self._shown: str | None = None
        """The error of the outage as last noted (None while not down)."""
        self.last_error: str | None = None
        self._last_error_at = 0.0
        self._rate = RollingRate()

    @property
    def state(self) -> FeedState:
        return self.feed.state

    @property
    def error(self) -> str | None:
        """Why the feed is down, while it is: what it says itself (since its last raise),
        else what it raised."""
        if self.feed.state is not FeedState.DOWN:
            return None
        error = self.feed.error or self._raised
        return error[:ERROR_CHARS] if error else None

    def observe(self) -> None:
        """Note a change of the feed's state or error since the last look."""
        state = self.feed.state
        if state is not self._seen:
            self._seen = state
            self._since = (self._clock.monotonic(), self._clock.time())
        if state is not FeedState.DOWN:
            self._raised = None
        error = self.error
        if error != self._shown:
            self._shown = error
            if error is not None:
                self.last_error, self._last_error_at = error, self._clock.time()

    def status(self) -> dict[str, object]:
        self.observe()
        now = self._clock.monotonic()
        extra = dict(self.feed.status())
        error = {"error": self._shown} if self._shown is not None else {}
        last = {} if self.last_error is None else {
            "last_error": self.last_error,
            "last_error_at": local_time(self._last_error_at, self.zone)}
        updates = self.sink.updates
        return {"name": self.feed.name, "kind": extra.pop("kind", "unknown"),
                "state": str(self._seen), "since": local_time(self._since[1], self.zone),
                "in_state_s": round(max(now - self._since[0], 0.0), 3), **error, **extra,
                "updates": updates,
                "updates_per_s": round(self._rate.sample(now, updates), 2),
                "restarts": self.restarts, **last}

    def settled(self) -> bool:
        """Live or finished now, or once before (a restart does not make a server unready)."""
        if self.feed.state in (FeedState.LIVE, FeedState.FINISHED):
            self.been_live = True
        return self.been_live

    async def run(self) -> None:
        feed = self.feed
        while True:
            began = self._clock.monotonic()
            try:
                await feed.run(self.sink)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.settled()
                self._failed(exc, self._clock.monotonic() - began)
            else:
                feed.state = FeedState.FINISHED
                self.settled()
                self.observe()
                log.info("feed finished", extra={"feed": feed.name})
                return
            delay = self.backoff.next()
            log.info("restarting feed", extra={"feed": feed.name, "in_s": round(delay, 1)})
            await asyncio.sleep(delay)
            self.restarts += 1  # the feed sets its state as it starts again

    def _failed(self, exc: Exception, ran_for: float) -> None:
        feed = self.feed
        if ran_for > self.backoff.reset_after:
            self.backoff.reset()
        first = self.backoff.attempts == 0  # a new outage, not a retry failing again
        feed.state = FeedState.DOWN
        self._raised = f"{type(exc).__name__}: {exc}"
        feed.error = None  # what it said before is told by what it raised
        self._shown = None  # a failure is a new error, even in words heard before
        self.observe()
        if first:  # the traceback once per outage; after that one line per failure
            log.error("feed failed", exc_info=exc, extra={"feed": feed.name})
        else:
            log.error("feed failed again", extra={"feed": feed.name, "error": self.error})
