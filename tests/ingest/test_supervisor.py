"""Feeds under supervision: a feed that raises is shown down with its error and restarted."""

from __future__ import annotations

import asyncio
import logging
from typing import ClassVar

import pytest

from tickwire.client.backoff import Backoff
from tickwire.feeds.base import FeedState, Sink
from tickwire.ingest.supervisor import FeedRunner


class FlakyFeed:
    """Fails `failures` times, then goes live and stays (or ends when `finite`)."""

    name = "flaky"
    codes: ClassVar[list[str]] = []

    def __init__(self, failures: int, finite: bool = False) -> None:
        self.failures = failures
        self.finite = finite
        self.state = FeedState.CONNECTING
        self.error: str | None = None
        self.runs = 0

    async def run(self, sink: Sink) -> None:
        self.runs += 1
        self.state = FeedState.CONNECTING
        await asyncio.sleep(0)
        if self.runs <= self.failures:
            raise ConnectionError(f"upstream refused, run {self.runs}")
        self.state = FeedState.LIVE
        if not self.finite:
            await asyncio.Event().wait()

    def status(self) -> dict[str, object]:
        return {"kind": "test", "runs": self.runs}


class NullSink:
    history = None
    updates = 0

    def publish(self, updates: object) -> None:
        pass

    def advance(self, now_ms: int) -> None:
        pass

    def skip_to(self, now_ms: int) -> None:
        pass


def runner(feed: FlakyFeed, delay: float = 0.2) -> FeedRunner:
    return FeedRunner(feed, NullSink(), Backoff(initial=delay, maximum=delay, jitter=0.0))


async def until(condition: object, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def test_a_failing_feed_is_shown_down_then_restarted_until_live(
        caplog: pytest.LogCaptureFixture) -> None:
    feed = FlakyFeed(failures=3)
    supervised = runner(feed)
    with caplog.at_level(logging.INFO, logger="tickwire.feeds"):
        task = asyncio.create_task(supervised.run())
        await until(lambda: feed.state is FeedState.DOWN)
        status = supervised.status()
        assert status["state"] == "down" and status["name"] == "flaky"
        assert status["error"] == "ConnectionError: upstream refused, run 1"
        assert not supervised.settled()
        await until(lambda: feed.state is FeedState.LIVE)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert feed.runs == 4 and supervised.restarts == 3
    status = supervised.status()
    assert status["state"] == "live" and "error" not in status and supervised.settled()
    failures = [r for r in caplog.records if r.msg.startswith("feed failed")]
    assert len(failures) == 3
    assert [r.exc_info is not None for r in failures] == [True, False, False]  # one traceback


async def test_a_feed_that_ends_is_finished_and_not_restarted() -> None:
    feed = FlakyFeed(failures=1, finite=True)
    supervised = runner(feed, delay=0.01)
    await asyncio.wait_for(supervised.run(), 5)
    assert feed.state is FeedState.FINISHED and feed.runs == 2
    assert supervised.settled()


async def test_a_restart_does_not_make_a_ready_server_unready() -> None:
    feed = FlakyFeed(failures=0)
    supervised = runner(feed)
    task = asyncio.create_task(supervised.run())
    await until(lambda: feed.state is FeedState.LIVE)
    assert supervised.settled()
    feed.state = FeedState.DOWN
    assert supervised.settled()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
