"""One exception tree for the whole project, and what the wire says for each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SHOWN_CODES = 10
"""Unknown codes an `UnknownCode` message names one by one; the rest are counted."""


class TickwireError(Exception):
    """Anything tickwire reports. `status` is the protocol's `code` where there is one."""

    status = 0

    def __init__(self, msg: str, status: int | None = None) -> None:
        super().__init__(msg)
        self.msg = msg
        if status is not None:
            self.status = status


class BadRequest(TickwireError):
    status = 400


class NotAuthorized(TickwireError):
    status = 403


class NotFound(TickwireError):
    status = 404


class UnknownCode(NotFound):
    """Product codes the server does not know, in `codes` (in the order asked).

    `quotes()` raises it when any code asked for is unknown, with the quotes it did get in
    `found`; a stream raises it from its next read once the server refuses a code.
    """

    def __init__(self, codes: Sequence[str], msg: str = "",
                 found: Sequence[Any] = ()) -> None:
        self.codes = tuple(codes)
        self.found = list(found)
        """The quotes of the codes that are known (`quotes()`), in the order asked."""
        super().__init__(msg or unknown_codes_text(self.codes))


def unknown_codes_text(codes: Sequence[str]) -> str:
    """`unknown code: x`, `unknown codes: x, y` (the first few, then how many more)."""
    shown = ", ".join(codes[:SHOWN_CODES])
    more = len(codes) - SHOWN_CODES
    if more > 0:
        shown += f" and {more} more"
    return f"unknown code{'s' if len(codes) > 1 else ''}: {shown}"


class RateLimited(TickwireError):
    status = 429

    def __init__(self, msg: str, retry_after: float = 1.0) -> None:
        super().__init__(msg)
        self.retry_after = retry_after


class ServerError(TickwireError):
    status = 500


class ConnectionLost(TickwireError):
    """The server cannot be reached, did not answer in time, or the connection dropped."""


_BY_STATUS: dict[int, type[TickwireError]] = {
    400: BadRequest, 403: NotAuthorized, 404: NotFound, 429: RateLimited,
}


def error_for(status: int, msg: str) -> TickwireError:
    """The exception for an HTTP status and the server's `msg`."""
    if status >= 500:
        return ServerError(msg, status)
    cls = _BY_STATUS.get(status)
    return cls(msg) if cls else TickwireError(msg, status)
