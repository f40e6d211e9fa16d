"""One server per data dir: an OS lock on a file in it, held while the server runs.

The kernel releases the lock when the holder exits in any way, `kill -9` included, so a lock
is never left behind. The file says who holds it, for the message a second server gives.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from datetime import datetime
from pathlib import Path

LOCK_FILE = "tickwire.lock"


class DataDirInUse(OSError):
    """Another process holds the data dir."""


class DataDirLock:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, what: str) -> None:
        """Take the lock for this process (`what` it is, e.g. the address it serves), or
        raise `DataDirInUse` naming the dir and the holder."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 1024).decode(errors="replace").strip() or "unknown process"
            os.close(fd)
            raise DataDirInUse(
                f"data dir {self.data_dir} is in use by another tickwire server ({holder}); "
                "stop that one, or give this one another --data-dir") from None
        except BaseException:
            os.close(fd)
            raise
        since = datetime.now().astimezone().isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, {what}, since {since}\n"
                 .encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the file releases the lock
            self._fd = None
