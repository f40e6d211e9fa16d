"""Recordings of the market's live updates: the format, its writer and its reader.

The format:

- One file per day of the receive time in UTC+8 (a fixed +08:00, whatever the service time
  zone): `<folder>/2026-12-01.jsonl.gz`, a new file at UTC+8 midnight.
- One line per update, `{"t":<receive time, Unix ms, wall clock>,"body":<the quote body
  exactly as the server pushes it>}` and a newline.
- gzip: members one after another, as `cat a.gz b.gz` makes them, which every gzip reader
  reads as one stream. A member ends every `MEMBER_BYTES` of lines, at the end of a day and at
  a clean stop; within one, what was written is sync-flushed at least once a second.

A `kill -9` so loses at most the last second and leaves a file whose last member is cut
short: plain readers read up to the cut and then fail, `read_lines` reads up to it and says
so. Before the writer appends to such a file it repairs it: the file's readable part (whole
lines) goes to a temp file in the same folder, which is fsynced and renamed over it; the new
member follows. Only the cut member is decompressed and compressed again, the members
before it are copied as they are.

One recorder writes in a folder at a time (two appending to one file would garble it): it
holds an OS lock on a file in it, which the kernel frees however its process ends.

The writer (`Recorder`) takes the bodies on the event loop (a list append under a lock) and
formats, compresses and writes them in a thread of its own. Bound: at most
`MAX_PENDING_BYTES` of bodies wait, plus the batch being written; past it the oldest are
dropped and counted. A write that fails (a full disk, no permission, the folder gone) keeps
its lines, is logged once per outage, counted and retried with a capped backoff; what a
failed write left in the file is cut off before the retry, so no line is written twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import tempfile
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger("tickwire.record")

SUFFIX = ".jsonl.gz"
"""The name of a day's file is its UTC+8 date and this (`2026-12-01.jsonl.gz`)."""
PLAIN_SUFFIX = ".jsonl"
"""An uncompressed recording (`read_lines` reads these too)."""
LOCK_FILE = ".recorder.lock"
"""The file in the folder whose OS lock the recorder writing in it holds."""
DAY_OFFSET_MS = 8 * 3_600_000
"""Days (and so files) begin at midnight UTC+8."""
_DAY_MS = 86_400_000

WRITE_EVERY = 0.5
"""Seconds between two writes (each ends with a sync flush): a `kill -9` loses about this
much, plus one write."""
MAX_PENDING_BYTES = 64 * 1024 * 1024
"""Bodies that may wait for the disk (about 70,000 lines: over two minutes of the whole
shipped catalogue at the simulator's default rate)."""
MEMBER_BYTES = 16 * 1024 * 1024
"""Bytes of lines after which a gzip member is ended and a new one begun: what a restart after
a `kill -9` decompresses and compresses again to repair the file."""
LEVEL = 3
"""zlib's compression level: about 5 x smaller than the lines at over 100 MB/s a core (level 6
is 20% smaller and three times slower)."""
RETRY_FIRST, RETRY_MOST = 0.25, 5.0
"""Seconds before the first retry of a failed write, doubling up to the most."""

_CHUNK = 1024 * 1024
_REPAIR = ".repair"
"""The ending of the temp file a repair writes (hidden, beside the file it repairs)."""
_HEADER = zlib.compressobj(LEVEL, zlib.DEFLATED, 31).flush()[:10]
"""The 10-byte gzip header zlib writes at the start of each of the writer's members."""


def day_of(t_ms: int) -> int:
    """The UTC+8 day of a receive time, as days since 1970-01-01."""
    return (t_ms + DAY_OFFSET_MS) // _DAY_MS


def file_name(t_ms: int) -> str:
    """The name of the file of a receive time (`2026-12-01.jsonl.gz`)."""
    return (date(1970, 1, 1) + timedelta(days=day_of(t_ms))).isoformat() + SUFFIX


# reading -----------------------------------------------------------------------------------

class _Members:
    """The data of gzip members one after another in a file, from a byte offset on, chunk
    by chunk. Once iterated: `start` is where the last member began, `cut` that it ended
    early (at the end of the file), `bad` why the bytes from `bad_at` on are no gzip."""

    def __init__(self, handle: BinaryIO, offset: int = 0) -> None:
        self._handle = handle
        self.offset = offset
        self.start = offset
        self.cut = False
        self.bad: str | None = None
        self.bad_at = 0

    def __iter__(self) -> Iterator[bytes]:
        handle, base = self._handle, self.offset
        handle.seek(base)
        inflate, fed = zlib.decompressobj(31), False
        buffer = b""
        while True:
            if not buffer:
                buffer = handle.read(_CHUNK)
                if not buffer:
                    break
            try:
                data = inflate.decompress(buffer)
            except zlib.error as exc:
                self.bad, self.bad_at = str(exc), self.start
                return
            fed = True
            if data:
                yield data
            if inflate.eof:  # a member ended; what follows it begins the next
                rest = inflate.unused_data
                base += len(buffer) - len(rest)
                buffer, self.start = rest, base
                inflate, fed = zlib.decompressobj(31), False
            else:
                base += len(buffer)
                buffer = b""
        self.cut = fed


def read_lines(path: Path) -> Iterator[bytes]:
    """The lines (without their newline) of a recording, `.jsonl.gz` or plain `.jsonl`.

    A file cut short is read up to the cut (a `kill -9` leaves one): everything complete is
    yielded, a partial last line is left out, and a warning says the tail was cut. Bytes
    that are no gzip end the reading the same way, with an error logged."""
    with path.open("rb") as handle:
        members = _Members(handle) if path.name.endswith(".gz") else None
        chunks: Iterable[bytes] = members if members is not None else \
            iter(lambda: handle.read(_CHUNK), b"")
        tail = b""
        for chunk in chunks:
            lines = (tail + chunk).split(b"\n")
            tail = lines.pop()
            yield from (line for line in lines if line)
    if members is not None and members.bad is not None:
        log.error("recording unreadable past a point; read up to it",
                  extra={"path": str(path), "at_byte": members.bad_at,
                         "error": members.bad})
    elif (members is not None and members.cut) or tail:
        log.warning("recording cut short; read up to its last complete line",
                    extra={"path": str(path), "partial_line_bytes": len(tail)})


def _last_member(handle: BinaryIO) -> _Members:
    """The file's members from the last one that begins where the writer's headers are (the
    whole file when none does) read through: whether the file ends cut short."""
    size = handle.seek(0, os.SEEK_END)
    end = size
    while end > 0:
        begin = max(0, end - _CHUNK)
        handle.seek(begin)
        block = handle.read(end - begin + len(_HEADER) - 1)
        at = block.rfind(_HEADER)
        while at >= 0:
            members = _Members(handle, begin + at)
            for _ in members:
                pass
            if members.bad is None:
                return members
            at = block.rfind(_HEADER, 0, at)
        end = begin
    members = _Members(handle, 0)
    for _ in members:
        pass
    return members


def _copy(source: BinaryIO, target: BinaryIO, length: int) -> None:
    source.seek(0)
    while length > 0:
        block = source.read(min(_CHUNK, length))
        if not block:
            raise OSError(f"{source.name}: shorter than expected")
        target.write(block)
        length -= len(block)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _ready_to_append(path: Path) -> None:
    """Make a day's file safe to append a member to: one whose last member was cut short is
    rewritten with that member's whole lines in a complete member (temp file, fsync,
    rename); the members before it are copied as they are. One with bytes that are no gzip
    is an `OSError`: it is left for a person to look at."""
    with path.open("rb") as handle:
        last = _last_member(handle)
        if last.bad is not None:
            raise OSError(f"{path} is not a gzip file past byte {last.bad_at} "
                          f"({last.bad}); move it away to record on")
        if not last.cut:
            return
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_REPAIR)
        try:
            with os.fdopen(fd, "wb") as out:
                _copy(handle, out, last.start)
                kept = _recompress(_Members(handle, last.start), out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
    _fsync_folder(path.parent)
    log.warning("recording was cut short (a kill?): repaired before appending",
                extra={"path": str(path), "kept_from_last_member_bytes": kept})


def _recompress(chunks: Iterable[bytes], out: BinaryIO) -> int:
    """The whole lines of `chunks` as one complete gzip member on `out`; their length."""
    deflate = zlib.compressobj(LEVEL, zlib.DEFLATED, 31)
    tail, kept = b"", 0
    for chunk in chunks:
        whole = chunk.rfind(b"\n") + 1
        if whole:
            out.write(deflate.compress(tail + chunk[:whole]))
            kept += len(tail) + whole
            tail = chunk[whole:]
        else:
            tail += chunk
    out.write(deflate.flush())
    return kept


# writing -----------------------------------------------------------------------------------

_Batch = tuple[int, list[bytes], int]
"""Bodies received together: the receive time (Unix ms), the bodies, their bytes."""


class _DayFile:
    """A day's file open for appending, the member being written and the compressed bytes
    not yet on disk."""

    def __init__(self, folder: Path, day: int) -> None:
        self.day = day
        self.name = file_name(day * _DAY_MS - DAY_OFFSET_MS)
        path = folder / self.name
        if path.exists():
            _ready_to_append(path)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self.size = os.fstat(self.fd).st_size
        """Bytes of the file known good: a failed write is cut back to this."""
        self._deflate = zlib.compressobj(LEVEL, zlib.DEFLATED, 31)
        self.member_bytes = 0
        self.out: list[bytes] = []
        self.out_lines = 0
        self._dirty = False

    def add(self, t_ms: int, bodies: list[bytes]) -> None:
        head = b'{"t":%d,"body":' % t_ms
        data = b"".join([head + body + b"}\n" for body in bodies])
        self.member_bytes += len(data)
        self.out.append(self._deflate.compress(data))
        self.out_lines += len(bodies)

    def end(self, member_bytes: int, finish: bool = False) -> None:
        """Sync-flush what was added, or end the member (past `member_bytes`, or `finish`)."""
        if finish or self.member_bytes >= member_bytes:
            self.out.append(self._deflate.flush(zlib.Z_FINISH))
            self._deflate = zlib.compressobj(LEVEL, zlib.DEFLATED, 31)
            self.member_bytes = 0
        else:
            self.out.append(self._deflate.flush(zlib.Z_SYNC_FLUSH))

    def write(self) -> tuple[int, int]:
        """Write what waits; (lines, bytes) written. A failure leaves it waiting, and the
        next try first cuts off whatever part of it reached the file."""
        if self._dirty:
            os.ftruncate(self.fd, self.size)
            self._dirty = False
        data = b"".join(self.out)
        self._dirty = True
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]
        self._dirty = False
        self.size += len(data)
        lines, self.out_lines, self.out = self.out_lines, 0, []
        return lines, len(data)

    def close(self) -> None:
        """Fsync and close the file (after `end(finish=True)` and `write`)."""
        os.fsync(self.fd)
        self.abandon()

    def abandon(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


class Recorder:
    """Appends the bodies of the recorded products to the day's file, from a thread."""

    def __init__(self, folder: Path, codes: Iterable[str] = (), *,
                 clock: Callable[[], float] = time.time,
                 max_pending_bytes: int = MAX_PENDING_BYTES, write_every: float = WRITE_EVERY,
                 member_bytes: int = MEMBER_BYTES,
                 retry: tuple[float, float] = (RETRY_FIRST, RETRY_MOST)) -> None:
        self.folder = folder
        self.codes: frozenset[str] | None = frozenset(codes) or None
        """The codes recorded; None: every product."""
        self.max_pending_bytes = max_pending_bytes
        self._clock = clock
        self._write_every = write_every
        self._member_bytes = member_bytes
        self._retry = retry
        self._lock = threading.Lock()  # guards the waiting batches and their counts
        self._pending: deque[_Batch] = deque()
        self._pending_bytes = 0
        self._pending_lines = 0
        self._file: _DayFile | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock_file: BinaryIO | None = None
        self.lines_written = 0
        self.bytes_written = 0
        self.dropped_lines = 0
        self.errors = 0
        self.last_error: str | None = None
        self.failing_since: float | None = None

    # the ingest's side -------------------------------------------------------------------

    def prepare(self) -> None:
        """Make the folder if it is missing and take it: an `OSError` naming the folder and
        the reason when no file can be made in it or another recorder has it (an OS lock on
        `LOCK_FILE` in it, held until `close` or the process ends, `kill -9` included)."""
        if self._lock_file is not None:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            lock = (self.folder / LOCK_FILE).open("a+b")
        except OSError as exc:
            why = "not a folder" if isinstance(exc, FileExistsError) else exc.strerror or exc
            raise OSError(f"record.path: cannot write recordings in {self.folder}: {why}"
                          ) from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.seek(0)
            holder = lock.read(200).decode(errors="replace").strip() or "another process"
            lock.close()
            raise OSError(f"record.path: {self.folder} is being recorded in by {holder}; "
                          "give each server a folder of its own") from None
        lock.truncate(0)
        lock.write(f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        lock.flush()
        self._lock_file = lock
        for stale in self.folder.glob(f".*{_REPAIR}"):  # a repair a kill interrupted
            stale.unlink(missing_ok=True)

    def start(self) -> None:
        """Write from a thread until `close` (`prepare` first to fail at once on a folder
        that cannot be written in; the thread makes a missing folder too)."""
        self._thread = threading.Thread(target=self._run, name="tickwire-record", daemon=True)
        self._thread.start()

    def record(self, bodies: list[bytes]) -> None:
        """Bodies received now, to be written as lines of the day's file."""
        size = sum(map(len, bodies))
        batch = (int(self._clock() * 1000), bodies, size)
        with self._lock:
            self._pending.append(batch)
            self._pending_bytes += size
            self._pending_lines += len(bodies)
            if self._pending_bytes > self.max_pending_bytes:
                self._drop_oldest()

    def _drop_oldest(self) -> None:
        if not self.dropped_lines:
            log.error("recorder over its bound: dropping the oldest waiting lines",
                      extra={"max_pending_bytes": self.max_pending_bytes})
        pending = self._pending
        while self._pending_bytes > self.max_pending_bytes and len(pending) > 1:
            _, bodies, size = pending.popleft()
            self._pending_bytes -= size
            self._pending_lines -= len(bodies)
            self.dropped_lines += len(bodies)

    @property
    def ok(self) -> bool:
        return self.failing_since is None

    def health(self) -> dict[str, object]:
        failing = self.failing_since
        current = self._file
        return {
            "state": "ok" if failing is None else "failing",
            "file": current.name if current is not None else "",
            "lines_written": self.lines_written, "bytes_written": self.bytes_written,
            "pending_lines": self._pending_lines, "dropped_lines": self.dropped_lines,
            "errors": self.errors, "last_error": self.last_error,
            **({} if failing is None else
               {"failing_for_s": round(time.monotonic() - failing, 1)}),
        }

    # writing -----------------------------------------------------------------------------

    def flush(self, finish: bool = False) -> None:
        """Write everything waiting now, in the caller's thread: the recorder's own, or any
        while that is not running (`finish`: and end the file's member and close it). On an
        error what was not written stays waiting (the batches not yet compressed go back to
        the front) and the error is raised."""
        current = self._file
        if current is not None and current.out:
            self._write(current)
        with self._lock:
            batches, self._pending = self._pending, deque()
            self._pending_bytes = self._pending_lines = 0
        try:
            for i, (t_ms, bodies, _) in enumerate(batches):
                current = self._day_file(day_of(t_ms), batches, i)
                current.add(t_ms, bodies)
        finally:
            if current is not None and current.out_lines:
                current.end(self._member_bytes)
        if current is not None:
            if current.out:
                self._write(current)
            if finish:
                self._end_file(current)

    def _day_file(self, day: int, batches: deque[_Batch], i: int) -> _DayFile:
        """The open file of `day`: the previous day's is ended first. On an error the batches
        from `i` on go back to wait."""
        current = self._file
        if current is not None and current.day == day:
            return current
        try:
            if current is not None:
                self._end_file(current)
            self.folder.mkdir(parents=True, exist_ok=True)
            self._file = _DayFile(self.folder, day)
            return self._file
        except BaseException:
            self._put_back(list(batches)[i:])
            raise

    def _put_back(self, batches: list[_Batch]) -> None:
        with self._lock:
            self._pending.extendleft(reversed(batches))
            self._pending_bytes += sum(size for _, _, size in batches)
            self._pending_lines += sum(len(bodies) for _, bodies, _ in batches)
            if self._pending_bytes > self.max_pending_bytes:
                self._drop_oldest()

    def _end_file(self, current: _DayFile) -> None:
        """End the file's member, write it, fsync and close the file."""
        current.end(0, finish=True)
        self._write(current)
        current.close()
        self._file = None

    def _write(self, current: _DayFile) -> None:
        lines, size = current.write()
        self.lines_written += lines
        self.bytes_written += size

    def _run(self) -> None:
        first, most = self._retry
        delay = first
        while not self._stopping.is_set():
            self._pause(self._write_every if self.failing_since is None else delay)
            if self._stopping.is_set():
                return
            try:
                self.flush()
            except Exception as exc:  # a disk error, or anything else: the thread lives on
                self._failed(exc)
                delay = min(delay * 2, most)
                continue
            delay = first
            if self.failing_since is not None:
                log.warning("recording again", extra={
                    "after_s": round(time.monotonic() - self.failing_since, 1),
                    "lines_written": self.lines_written})
                self.failing_since = None

    def _pause(self, seconds: float) -> None:
        """Short sleeps rather than a timed `Event.wait` (see `StoreWriter._pause`)."""
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set() and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.05))

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            log.error("recorder cannot write; keeping lines in memory and retrying",
                      extra={"error": self.last_error, "pending_lines": self._pending_lines})

    def close(self) -> None:
        """Stop the thread, write what waits and end the file's member; a failure is logged
        and what could not be written counted as dropped."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.flush(finish=True)
        except OSError as exc:
            self._failed(exc)
            current, self._file = self._file, None
            lost = self._pending_lines + (current.out_lines if current is not None else 0)
            if current is not None:
                current.abandon()
            self.dropped_lines += lost
            log.error("recorder could not write at shutdown; lines lost",
                      extra={"error": self.last_error, "lines": lost})
        if self._lock_file is not None:
            self._lock_file.close()  # which releases the folder
            self._lock_file = None
