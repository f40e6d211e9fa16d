"""What a feed asks of its source once at start, kept in the data dir for a start without it.

A relay's listing and an exchange's markets are asked on a loop of their own, in a thread
(the caller's loop may be running), and written to the data dir; a start that cannot ask
uses what an earlier one kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")


class NothingKept(Exception):
    """Asking failed, and no earlier start kept an answer; the text says why asking failed."""


def asked_or_kept(kept: Path, ask: Callable[[], Coroutine[Any, Any, T]], kind: type[T],
                  errors: tuple[type[BaseException], ...]) -> tuple[T, str | None]:
    """`ask()`'s answer, kept at `kept`, and None; or, when it fails with one of `errors`,
    the answer kept before and why asking failed (`NothingKept` when there is none)."""
    try:
        with ThreadPoolExecutor(1) as apart:  # the caller's loop may be running: not on it
            fresh = apart.submit(asyncio.run, ask()).result()
    except errors as exc:
        why = f"{type(exc).__name__}: {exc}"
        try:
            return msgspec.json.decode(kept.read_bytes(), type=kind), why
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            raise NothingKept(why) from None
    kept.parent.mkdir(parents=True, exist_ok=True)
    temporary = kept.with_suffix(".tmp")
    temporary.write_bytes(msgspec.json.encode(fresh))
    temporary.replace(kept)
    return fresh, None
