"""What the runner tells of a feed: its state since when, its error and last error with when,
its updates in all and per second, its restarts; for states the feed sets itself too.

The feed here does one step at a time, when the test says; the runner reads a fake clock,
so every time it shows is known exactly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from zoneinfo import ZoneInfo

import pytest

from tickwire.client.backoff import Backoff
from tickwire.engine.base import IngestStatus
from tickwire.feeds.base import FeedState, HistorySink, Sink
from tickwire.gateway.ops import state_of
from tickwire.ingest.supervisor import FeedRunner
from tickwire.models import Update

START = 1_764_651_909.0
"""The fake clock's Unix time at its start: 2025-12-02 13:05:09 in Shanghai (+08:00)."""
ZONE = ZoneInfo("Asia/Shanghai")


class FakeClock:
    def __init__(self) -> None:
        self.elapsed = 0.0

    def monotonic(self) -> float:
        return 500.0 + self.elapsed

    def time(self) -> float:
        return START + self.elapsed

    def advance(self, seconds: float) -> None:
        self.elapsed += seconds


def at(elapsed: float) -> str:
    """The time the runner writes for `elapsed` seconds after the clock's start."""
    whole, ms = divmod(round(elapsed * 1000), 1000)
    second = 9 + whole
    return f"2025-12-02T13:{5 + second // 60:02}:{second % 60:02}.{ms:03}+08:00"


Step = Callable[["ScriptedFeed", Sink], None]
FINISH = object()


class ScriptedFeed:
    """Does what the test hands it (`do`): a step, an exception to raise, or FINISH."""

    name = "scripted"

    def __init__(self) -> None:
        self.codes: list[str] = []
        self.state = FeedState.CONNECTING
        self.error: str | None = None
        self.runs = 0
        self.steps: asyncio.Queue[Step | BaseException | object] = asyncio.Queue()

    async def run(self, sink: Sink) -> None:
        self.runs += 1
        while True:
            step = await self.steps.get()
            self.steps.task_done()
            if step is FINISH:
                return
            if isinstance(step, BaseException):
                raise step
            step(self, sink)  # type: ignore[operator]

    async def do(self, step: Step | BaseException | object) -> None:
        """Hand over a step and return once the feed (and the runner, on a raise or the
        end) has done with it."""
        await self.steps.put(step)
        await self.steps.join()
        for _ in range(3):  # a raise or the end is handled by the runner in its next turn
            await asyncio.sleep(0)

    def status(self) -> dict[str, object]:
        return {"kind": "script", "runs": self.runs}


def live(feed: ScriptedFeed, sink: Sink) -> None:
    feed.state = FeedState.LIVE


def down(why: str) -> Step:
    def step(feed: ScriptedFeed, sink: Sink) -> None:
        feed.state, feed.error = FeedState.DOWN, why
    return step


def recovered(feed: ScriptedFeed, sink: Sink) -> None:
    feed.state, feed.error = FeedState.LIVE, None


def publish(count: int) -> Step:
    def step(feed: ScriptedFeed, sink: Sink) -> None:
        sink.publish([Update(code="x", ts=0, price=1.0)] * count)
    return step


class CountingSink:
    def __init__(self) -> None:
        self.history: HistorySink | None = None
        self.updates = 0

    def publish(self, updates: list[Update]) -> None:
        self.updates += len(updates)

    def advance(self, now_ms: int) -> None:
        pass

    def skip_to(self, now_ms: int) -> None:
        pass


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def feed() -> ScriptedFeed:
    return ScriptedFeed()


@pytest.fixture
async def runner(feed: ScriptedFeed, clock: FakeClock) -> AsyncIterator[FeedRunner]:
    supervised = FeedRunner(feed, CountingSink(), Backoff(initial=0.001, maximum=0.001,
                                                          jitter=0.0), zone=ZONE, clock=clock)
    task = asyncio.create_task(supervised.run())
    yield supervised
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)


def health(runner: FeedRunner) -> str:
    return state_of(IngestStatus(ready=True, feeds=[runner.status()]), {})


async def test_a_feed_that_goes_live_down_by_itself_recovers_raises_and_finishes(
        feed: ScriptedFeed, runner: FeedRunner, clock: FakeClock) -> None:
    assert runner.status() == {
        "name": "scripted", "kind": "script", "state": "connecting", "since": at(0),
        "in_state_s": 0.0, "runs": 1, "updates": 0, "updates_per_s": 0.0, "restarts": 0}
    clock.advance(2.5)
    await feed.do(live)
    runner.status()  # a report (every 0.25 s in a server) notes the change
    clock.advance(4)
    status = runner.status()
    assert (status["state"], status["since"], status["in_state_s"]) == ("live", at(2.5), 4.0)
    assert health(runner) == "ok"

    clock.advance(1)  # t = 7.5: the upstream goes away; the feed says so and keeps trying
    await feed.do(down("upstream unreachable"))
    status = runner.status()
    assert (status["state"], status["since"], status["error"]) == \
        ("down", at(7.5), "upstream unreachable")
    assert (status["last_error"], status["last_error_at"]) == ("upstream unreachable", at(7.5))
    assert health(runner) == "degraded"
    clock.advance(2)  # t = 9.5: still down, for another reason
    await feed.do(down("upstream timed out"))
    status = runner.status()
    assert (status["state"], status["since"], status["in_state_s"]) == ("down", at(7.5), 2.0)
    assert (status["error"], status["last_error_at"]) == ("upstream timed out", at(9.5))

    clock.advance(0.5)  # t = 10: back; the last error stays, with when it was
    await feed.do(recovered)
    status = runner.status()
    assert (status["state"], status["since"], "error" in status) == ("live", at(10), False)
    assert (status["last_error"], status["last_error_at"]) == ("upstream timed out", at(9.5))
    assert health(runner) == "ok"

    clock.advance(5)  # t = 15: the feed raises; down at once, restarted after the backoff
    await feed.do(ConnectionError("reset by peer"))
    await until(lambda: feed.runs == 2)
    assert runner.restarts == 1
    status = runner.status()  # down with what it raised, until it says otherwise
    assert (status["state"], status["since"], status["error"]) == \
        ("down", at(15), "ConnectionError: reset by peer")
    assert (status["last_error"], status["last_error_at"]) == \
        ("ConnectionError: reset by peer", at(15))
    clock.advance(0.5)
    await feed.do(live)
    status = runner.status()
    assert (status["state"], status["since"], "error" in status) == ("live", at(15.5), False)

    clock.advance(1)  # t = 16.5: a replay's end
    await feed.do(FINISH)
    status = runner.status()
    assert (status["state"], status["since"], status["restarts"]) == ("finished", at(16.5), 1)
    assert health(runner) == "ok"


async def test_a_feed_failing_at_each_restart_is_down_since_its_first_failure(
        feed: ScriptedFeed, runner: FeedRunner, clock: FakeClock) -> None:
    await feed.do(live)
    runner.status()
    for run in (1, 2, 3):
        clock.advance(1)
        await feed.do(OSError(f"refused, run {run}"))
        await until(lambda: feed.runs == run + 1)  # noqa: B023  (awaited at once)
        status = runner.status()
        assert (status["state"], status["since"], status["restarts"]) == ("down", at(1), run)
        assert (status["error"], status["last_error_at"]) == (f"OSError: refused, run {run}",
                                                              at(run))


async def test_a_raise_is_shown_as_the_error_while_down(
        feed: ScriptedFeed, clock: FakeClock) -> None:
    slow = Backoff(initial=60.0, maximum=60.0, jitter=0.0)
    supervised = FeedRunner(feed, CountingSink(), slow, zone=ZONE, clock=clock)
    task = asyncio.create_task(supervised.run())
    try:
        await feed.do(down("upstream unreachable"))
        supervised.status()  # as the reports every 0.25 s do
        clock.advance(3)
        await feed.do(ValueError("bad frame " + "x" * 400))
        status = supervised.status()
        assert status["state"] == "down" and status["since"] == at(0)  # down all along
        error = status["error"]
        assert isinstance(error, str) and error.startswith("ValueError: bad frame xxx")
        assert len(error) == 300
        assert (status["last_error"], status["last_error_at"]) == (error, at(3))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_what_a_feed_raises_tells_over_what_it_said_and_its_next_word_over_both(
        feed: ScriptedFeed, runner: FeedRunner) -> None:
    await feed.do(down("upstream unreachable"))
    await feed.do(RuntimeError("gave up"))
    await until(lambda: feed.runs == 2)
    assert feed.error is None and runner.status()["error"] == "RuntimeError: gave up"
    await feed.do(down("still unreachable"))  # the run after the restart says why itself
    assert runner.status()["error"] == "still unreachable"
    await feed.do(recovered)
    status = runner.status()
    assert status["state"] == "live" and "error" not in status
    assert status["last_error"] == "still unreachable"
    feed.state = FeedState.DOWN  # down again without a word: no stale raise is shown
    status = runner.status()
    assert status["state"] == "down" and "error" not in status


async def test_the_same_error_again_after_a_recovery_is_a_new_last_error(
        feed: ScriptedFeed, runner: FeedRunner, clock: FakeClock) -> None:
    for when in (1, 2.25):
        clock.advance(1)
        await feed.do(down("upstream unreachable"))
        assert runner.status()["last_error_at"] == at(when)
        clock.advance(0.25)
        await feed.do(recovered)
        assert runner.status()["last_error_at"] == at(when)


async def test_a_feed_that_is_down_without_a_word_has_no_error(
        feed: ScriptedFeed, runner: FeedRunner) -> None:
    await feed.do(live)
    runner.status()
    feed.state = FeedState.DOWN
    status = runner.status()
    assert status["state"] == "down" and "error" not in status and "last_error" not in status


async def test_updates_in_all_and_per_second(feed: ScriptedFeed, runner: FeedRunner,
                                             clock: FakeClock) -> None:
    await feed.do(live)
    runner.status()
    for _ in range(40):  # 10 s of 100 updates a second, a status every 0.25 s
        clock.advance(0.25)
        await feed.do(publish(25))
        status = runner.status()
    assert (status["updates"], status["updates_per_s"]) == (1000, 100.0)
    for _ in range(44):  # nothing for 11 s
        clock.advance(0.25)
        status = runner.status()
    assert (status["updates"], status["updates_per_s"]) == (1000, 0.0)


def test_the_feeds_own_count_gives_way_to_the_runners() -> None:
    class Counting(ScriptedFeed):
        def status(self) -> dict[str, object]:
            return {"kind": "script", "updates": 7}

    sink = CountingSink()
    sink.updates = 9
    status = FeedRunner(Counting(), sink).status()
    assert status["updates"] == 9 and str(status["since"]).endswith("+00:00")  # UTC
