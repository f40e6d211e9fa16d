"""Pure market state: quotes, trading hours and K-line building. No I/O, no clock of its own."""

from tickwire.market.clock import TimeZone
from tickwire.market.state import Market

__all__ = ["Market", "TimeZone"]
