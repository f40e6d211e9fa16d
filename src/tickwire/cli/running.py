"""Running a command's work: every error becomes one `tickwire: ...` line on stderr and an
exit status, never a traceback."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, NoReturn, TypeVar

import typer

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
    import logging

    from tickwire.errors import TickwireError

    logger = logging.getLogger("tickwire.client")
    logger.propagate = False
    logger.setLevel(logging.WARNING)
    handler: logging.Handler = logging.NullHandler()
    if log_warnings:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("tickwire: %(message)s"))
    logger.addHandler(handler)
    try:
        return run(work)
    except TickwireError as exc:
        fail(f"error: {exc.msg}", 1)
    except ValueError as exc:
        fail(str(exc), 2)
    except OSError as exc:
        fail(f"error: {exc}", 1)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
