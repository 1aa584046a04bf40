"""Sharing the event loop with large work: letting go of large containers, and many tasks of one
poll sharing a turn.

Dropping the last reference to a list or dict of a million entries frees them all in one call:
tens of milliseconds in which nothing else runs. A container that held one poll's answer is
emptied a slice at a time instead, handing the loop back in between.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
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


TURN_SHARE_SECONDS = 0.002
"""Work done in one turn of the event loop, by the tasks sharing a `TurnShare`, before the rest
wait for the next."""


class TurnShare:
    """Work sliced by time rather than by count, for one task or many. A poll's units run as up to
    32 tasks, and answers arrive together: every task whose answer came in the same `select` runs
    in the same turn of the loop, parsing its answer and sending its next request (a Streams Charts
    poll: 10 to 20 ms in one turn, measured). Each caller calls `wait` before such work; once the
    turn's share is spent, the callers go to the next turn (after the loop has looked at its
    sockets again: a probe, a scrape), the first of them starting a new share there."""

    def __init__(self, seconds: float = TURN_SHARE_SECONDS, clock: Callable[[], float] = time.perf_counter) -> None:
        self.seconds = seconds
        self.clock = clock
        self.started = clock()
        self.wave = 0

    async def wait(self) -> None:
        while self.clock() - self.started >= self.seconds:
            wave = self.wave
            await asyncio.sleep(0)
            if self.wave == wave:
                self.wave += 1
                self.started = self.clock()


LOOP_SHARE = TurnShare()
"""The one share of the process's background work: every poll's units and every state being
encoded wait on it, so a turn holds at most one share of such work however many sources poll at
once (ten sources polling together, each with a share of its own, made turns of 20 ms). A
response being written has a share of its own: it is what a scraper waits for."""


GIL_SWITCH_SECONDS = 0.001
"""How long a thread holding the GIL runs before one waiting for it gets its turn (CPython's
default: 5 ms)."""


def share_gil_promptly() -> None:
    """Let the event loop's thread have the GIL back within GIL_SWITCH_SECONDS of wanting it.

    Worker threads run beside the loop: the own metrics rendered for a scrape (pure Python), a
    scrape's deflate, joining a large answer, the state writer. Each time one of them held the GIL
    when the loop came back from `select`, the loop waited up to CPython's 5 ms switch interval;
    around a Streams Charts 10k + Cloudflare source's first poll, that made the longest
    `/-/healthy` answer 28 to 30 ms, against 17 to 21 ms with 1 ms (bench/scale.py, two runs each).
    """
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
