"""Letting go of large containers without holding the event loop.

Dropping the last reference to a list or dict of a million entries frees them all in one call:
tens of milliseconds in which nothing else runs. A container that held one poll's answer is
emptied a slice at a time instead, handing the loop back in between.
"""

from __future__ import annotations

import asyncio
from typing import Any

RELEASED_PER_TURN = 10_000
"""Entries freed between two hand-backs to the event loop: well under a millisecond."""


async def release(container: list[Any] | dict[Any, Any], per_turn: int = RELEASED_PER_TURN) -> None:
    """Empty `container` `per_turn` entries at a time (the caller must be its only user from now
    on; fewer per turn when each entry holds many objects); a small one at once, without a
    hand-back (10k small answers per poll would pay 10k turns)."""
    if len(container) <= per_turn:
        container.clear()
    elif isinstance(container, dict):
        while container:
            for _ in range(min(per_turn, len(container))):
                container.popitem()
            await asyncio.sleep(0)
    else:
        while container:
            del container[-per_turn:]
            await asyncio.sleep(0)
