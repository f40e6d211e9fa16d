"""The allow-list a gateway of a shared engine applies: its ingest's, as last announced or
answered."""

from __future__ import annotations

import asyncio
import contextlib

from tickwire.engine.base import AllowSnapshot


class AllowCopy:
    """The newest snapshot seen; an older one (a slow answer) never replaces it."""

    def __init__(self) -> None:
        self.snapshot = AllowSnapshot(-1, [])
        self._changed = asyncio.Event()

    def take(self, snapshot: AllowSnapshot) -> AllowSnapshot:
        if snapshot.version > self.snapshot.version:
            self.snapshot = snapshot
            self._changed.set()
        return snapshot

    async def changed(self, within: float) -> None:
        """Return when a newer snapshot was taken, or after `within` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), within)
        self._changed.clear()
