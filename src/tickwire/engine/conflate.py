"""Conflation of a backlog of encoded updates: what to keep when not all of it can go."""

from __future__ import annotations

from collections.abc import Callable

Updates = list[tuple[str, bytes]]


def keep_newest(updates: Updates, budget: int, cost: Callable[[str, bytes], int]) -> Updates:
    """`updates` (oldest first) cut to about `budget`, counted by `cost`: the newest updates
    while they fit, and before them the newest update of each other product. So every
    product's newest is kept, one product's updates keep their order, and what is kept is
    a run of whole recent updates (many per product), not one per product."""
    spent = 0
    cut = len(updates)
    while cut > 0:
        code, body = updates[cut - 1]
        each = cost(code, body)
        if spent + each > budget:
            break
        spent += each
        cut -= 1
    newest = updates[cut:]
    seen = {code for code, _ in newest}
    older = []
    for update in reversed(updates[:cut]):
        if update[0] not in seen:
            seen.add(update[0])
            older.append(update)
    older.reverse()
    return older + newest
