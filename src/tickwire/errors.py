"""One exception tree for the whole project, and what the wire says for each."""

from __future__ import annotations


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


class RateLimited(TickwireError):
    status = 429

    def __init__(self, msg: str, retry_after: float = 1.0) -> None:
        super().__init__(msg)
        self.retry_after = retry_after


class ServerError(TickwireError):
    status = 500


class ConnectionLost(TickwireError):
    """The connection to the server dropped."""


_BY_STATUS: dict[int, type[TickwireError]] = {
    400: BadRequest, 403: NotAuthorized, 404: NotFound, 429: RateLimited,
}


def error_for(status: int, msg: str) -> TickwireError:
    """The exception for an HTTP status and the server's `msg`."""
    if status >= 500:
        return ServerError(msg, status)
    cls = _BY_STATUS.get(status)
    return cls(msg) if cls else TickwireError(msg, status)
