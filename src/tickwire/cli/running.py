"""Running a command's work: every error becomes one `tickwire: ...` line on stderr and an
exit status, never a traceback."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import typer

from tickwire.errors import TickwireError

T = TypeVar("T")


def fail(message: str, code: int) -> NoReturn:
    typer.echo(f"tickwire: {message}", err=True)
    raise typer.Exit(code)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end, on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    result: T = uvloop.run(coro)
    return result


def run_client(work: Coroutine[Any, Any, T], log_warnings: bool = True) -> T:
    """Run a client coroutine; errors become one line and exit status 1 (2 for usage).

    The SDK's warnings (retries) print as `tickwire: ...` lines, unless the command shows
    connection events its own way (`watch`, `record`).
    """
    try:
        with _client_warnings(log_warnings):
            return run(work)
    except TickwireError as exc:
        fail(f"error: {exc.msg}", 1)
    except ValueError as exc:
        fail(str(exc), 2)
    except BrokenPipeError:
        # whoever read the output stopped (`| head`): end quietly, as a Ctrl-C does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None
    except OSError as exc:
        fail(f"error: {exc}", 1)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@contextmanager
def _client_warnings(show: bool) -> Iterator[None]:
    """While a command runs, the SDK's log shows warnings as `tickwire: ...` lines on stderr
    (or nothing); afterwards the logger is as it was, so running many commands in one process
    adds nothing up."""
    logger = logging.getLogger("tickwire.client")
    handler: logging.Handler = logging.NullHandler()
    if show:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("tickwire: %(message)s"))
    saved = logger.propagate, logger.level
    logger.propagate = False
    logger.setLevel(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = saved[0]
        logger.setLevel(saved[1])
