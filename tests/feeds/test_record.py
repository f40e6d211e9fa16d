"""Recordings: the lines and their format, a file a day in UTC+8, a file a kill cut short
read back and repaired before it is appended to, disk errors retried, the bound."""

from __future__ import annotations

import errno
import gzip
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tickwire.feeds import record as recording
from tickwire.feeds.record import SUFFIX, Recorder, file_name, read_lines

MIDNIGHT = 1_764_518_400.0
"""2025-12-01 00:00 in UTC+8 (16:00 UTC the day before), in Unix seconds."""


class Clock:
    """Wall time as the test says."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def body(i: int) -> bytes:
    return b'{"StockCode":"btcusdt","Price":%d.5,"Time":"2025-12-01 00:00:00"}' % i


def line(t_ms: int, i: int) -> bytes:
    return b'{"t":%d,"body":%b}' % (t_ms, body(i))


@pytest.fixture
def made(tmp_path: Path) -> Iterator[Callable[..., Recorder]]:
    """Recorders in `tmp_path/rec`, without a thread unless started; closed at the end."""
    recorders: list[Recorder] = []

    def make(clock: Clock | None = None, **kwargs: object) -> Recorder:
        recorder = Recorder(tmp_path / "rec", clock=clock or Clock(MIDNIGHT + 3600),
                            **kwargs)  # type: ignore[arg-type]
        recorders.append(recorder)
        return recorder

    yield make
    for recorder in recorders:
        recorder.close()


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_each_body_is_one_line_with_its_receive_time(made: Callable[..., Recorder]) -> None:
    clock = Clock(MIDNIGHT + 3600.123)
    recorder = made(clock)
    recorder.record([body(1), body(2)])
    clock.now += 0.5
    recorder.record([body(3)])
    recorder.close()
    path = recorder.folder / "2025-12-01.jsonl.gz"
    t = int((MIDNIGHT + 3600.123) * 1000)
    expected = [line(t, 1), line(t, 2), line(t + 500, 3)]
    assert gzip.decompress(path.read_bytes()) == b"".join(x + b"\n" for x in expected)
    assert list(read_lines(path)) == expected
    assert json.loads(expected[0])["body"] == json.loads(body(1))
    health = recorder.health()
    assert health["lines_written"] == 3 and health["bytes_written"] == path.stat().st_size
    assert health["state"] == "ok" and health["dropped_lines"] == 0


def test_a_new_file_at_midnight_utc8(made: Callable[..., Recorder]) -> None:
    clock = Clock(MIDNIGHT - 0.001)
    recorder = made(clock)
    recorder.record([body(1)])
    recorder.flush()
    clock.now = MIDNIGHT
    recorder.record([body(2)])
    clock.now = MIDNIGHT + 86_400 - 0.001  # the last moment of the day, in the same write
    recorder.record([body(3)])
    clock.now = MIDNIGHT + 86_400
    recorder.record([body(4)])
    recorder.close()
    files = sorted(p.name for p in recorder.folder.iterdir())
    assert files == ["2025-11-30.jsonl.gz", "2025-12-01.jsonl.gz", "2025-12-02.jsonl.gz"]
    prices = {name: [json.loads(x)["body"]["Price"] for x in
                     read_lines(recorder.folder / name)] for name in files}
    assert prices == {"2025-11-30.jsonl.gz": [1.5], "2025-12-01.jsonl.gz": [2.5, 3.5],
                      "2025-12-02.jsonl.gz": [4.5]}
    assert recorder.lines_written == 4
    assert file_name(int(MIDNIGHT * 1000)) == "2025-12-01" + SUFFIX


def killed_file(made: Callable[..., Recorder], lines: int) -> tuple[Path, bytes]:
    """A day's file as a `kill -9` after a write leaves it (written, its member not ended),
    and what a reader gets of it."""
    recorder = made(member_bytes=400)  # a few members, so only the last is repaired
    for i in range(lines):
        recorder.record([body(i)])
        recorder.flush()
    path = recorder.folder / recorder.health()["file"]  # type: ignore[operator]
    data = path.read_bytes()
    assert recorder._file is not None
    recorder._file.abandon()  # as the kill does: no member ended
    recorder._file = None
    return path, data


def test_a_file_cut_short_reads_up_to_the_cut(made: Callable[..., Recorder],
                                              caplog: pytest.LogCaptureFixture) -> None:
    path, data = killed_file(made, 12)
    with pytest.raises(EOFError):
        gzip.decompress(data)  # what plain readers make of it
    t = int((MIDNIGHT + 3600) * 1000)
    with caplog.at_level(logging.WARNING, logger="tickwire.record"):
        assert list(read_lines(path)) == [line(t, i) for i in range(12)]
    assert [r.msg for r in caplog.records] == [
        "recording cut short; read up to its last complete line"]
    caplog.clear()
    path.write_bytes(data[:-7])  # the last write itself cut: its line is left out
    with caplog.at_level(logging.WARNING, logger="tickwire.record"):
        assert list(read_lines(path)) == [line(t, i) for i in range(11)]
    assert len(caplog.records) == 1
    plain = path.with_name("2025-12-01.jsonl")
    plain.write_bytes(line(t, 0) + b"\n" + line(t, 1)[:20])
    assert list(read_lines(plain)) == [line(t, 0)]


@pytest.mark.parametrize("cut", [0, 1, 5, 11, 30])
def test_a_restart_repairs_a_cut_file_then_appends(made: Callable[..., Recorder],
                                                   cut: int) -> None:
    path, data = killed_file(made, 12)
    path.write_bytes(data[:len(data) - cut])
    t = int((MIDNIGHT + 3600) * 1000)
    before = list(read_lines(path))
    assert before == [line(t, i) for i in range(len(before))]
    assert len(before) == 12 if cut == 0 else len(before) >= 10
    kept_members = data[:data.rfind(recording._HEADER)]
    recorder = made()
    recorder.record([body(100)])
    recorder.close()
    repaired = path.read_bytes()
    assert repaired.startswith(kept_members)  # whole members are copied, not recompressed
    lines = gzip.decompress(repaired).splitlines()  # a plain reader reads it all
    assert lines == [*before, line(t, 100)]
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".repair")]


def test_a_clean_file_is_appended_to_as_it_is(made: Callable[..., Recorder]) -> None:
    first = made()
    first.record([body(1)])
    first.close()
    path = first.folder / "2025-12-01.jsonl.gz"
    data = path.read_bytes()
    second = made()
    second.record([body(2)])
    second.close()
    assert path.read_bytes().startswith(data)
    assert len(gzip.decompress(path.read_bytes()).splitlines()) == 2


def test_a_file_that_is_no_gzip_is_left_alone(made: Callable[..., Recorder]) -> None:
    folder = made().folder
    folder.mkdir()
    path = folder / "2025-12-01.jsonl.gz"
    path.write_bytes(b"not gzip at all\n")
    recorder = made()
    recorder.record([body(1)])
    with pytest.raises(OSError, match="not a gzip file past byte 0"):
        recorder.flush()
    assert path.read_bytes() == b"not gzip at all\n"
    assert recorder.health()["pending_lines"] == 1  # kept, to be retried
    path.unlink()
    recorder.flush()
    assert recorder.lines_written == 1


def test_an_unusable_folder_is_an_error_at_start(tmp_path: Path) -> None:
    (tmp_path / "rec").write_text("a file where the folder should be")
    with pytest.raises(OSError, match=r"record\.path: cannot write recordings in .*rec"):
        Recorder(tmp_path / "rec").prepare()
    nested = Recorder(tmp_path / "made" / "on" / "start")
    nested.prepare()
    assert nested.folder.is_dir() and [p.name for p in nested.folder.iterdir()] == [
        recording.LOCK_FILE]
    nested.close()


def test_one_recorder_a_folder(tmp_path: Path) -> None:
    first, second = Recorder(tmp_path / "rec"), Recorder(tmp_path / "rec")
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / ".2025-12-01.jsonl.gz.x1y2.repair").write_bytes(b"half a repair")
    first.prepare()
    assert [p.name for p in first.folder.iterdir()] == [recording.LOCK_FILE]  # tidied
    first.prepare()  # again: it has the folder already
    with pytest.raises(OSError, match=rf"record\.path: {tmp_path / 'rec'} is being recorded "
                                      rf"in by pid {os.getpid()} on "):
        second.prepare()
    first.close()
    second.prepare()
    second.close()


def test_a_disk_error_is_retried_logged_once_and_nothing_is_lost(
        made: Callable[..., Recorder], caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(MIDNIGHT + 86_400 - 1)
    recorder = made(clock, write_every=0.02, retry=(0.01, 0.05))
    recorder.prepare()
    with caplog.at_level(logging.INFO, logger="tickwire.record"):
        recorder.start()
        recorder.record([body(0)])
        wait_for(lambda: recorder.lines_written == 1)
        folder = recorder.folder
        shutil.move(folder, folder.with_name("moved"))
        folder.write_text("a file where the folder should be")
        clock.now += 1  # a new day: its file cannot be made
        for i in range(1, 4):
            recorder.record([body(i)])
        wait_for(lambda: recorder.errors >= 3)
        health = recorder.health()
        assert health["state"] == "failing" and not recorder.ok
        assert health["pending_lines"] == 3 and "FileExistsError" in str(health["last_error"])
        folder.unlink()
        wait_for(lambda: recorder.ok)
        recorder.close()
    assert recorder.lines_written == 4 and recorder.dropped_lines == 0
    assert [json.loads(x)["body"]["Price"] for x in
            read_lines(folder / "2025-12-02.jsonl.gz")] == [1.5, 2.5, 3.5]
    assert len(list(read_lines(folder.with_name("moved") / "2025-12-01.jsonl.gz"))) == 1
    assert [r.msg for r in caplog.records if r.levelno >= logging.WARNING] == [
        "recorder cannot write; keeping lines in memory and retrying", "recording again"]


def test_a_failed_write_is_cut_off_and_written_again(made: Callable[..., Recorder],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = made()
    recorder.record([body(0)])
    recorder.flush()
    real_write = os.write

    def full_disk(fd: int, data: memoryview) -> int:
        real_write(fd, data[:len(data) // 2])  # part of it reaches the disk, then it is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(recording.os, "write", full_disk)
    recorder.record([body(1), body(2)])
    with pytest.raises(OSError, match="No space"):
        recorder.flush()
    recorder.record([body(3)])
    with pytest.raises(OSError, match="No space"):
        recorder.flush()
    monkeypatch.setattr(recording.os, "write", real_write)
    recorder.close()
    path = recorder.folder / "2025-12-01.jsonl.gz"
    prices = [json.loads(x)["body"]["Price"] for x in gzip.decompress(
        path.read_bytes()).splitlines()]
    assert prices == [0.5, 1.5, 2.5, 3.5]  # each once, in order
    assert recorder.lines_written == 4


def test_past_the_bound_the_oldest_lines_are_dropped_and_counted(
        made: Callable[..., Recorder], caplog: pytest.LogCaptureFixture) -> None:
    size = len(body(0))
    recorder = made(max_pending_bytes=5 * size)
    with caplog.at_level(logging.ERROR, logger="tickwire.record"):
        for i in range(4):
            recorder.record([body(2 * i), body(2 * i + 1)])
    assert recorder.dropped_lines == 4 and recorder.health()["pending_lines"] == 4
    assert len(caplog.records) == 1
    recorder.close()
    prices = [json.loads(x)["body"]["Price"] for x in
              read_lines(recorder.folder / "2025-12-01.jsonl.gz")]
    assert prices == [4.5, 5.5, 6.5, 7.5]
    assert recorder.health()["dropped_lines"] == 4
