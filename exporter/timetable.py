"""When each source polls: one asyncio task per source that sleeps until the source is due,
polls, and works out the next time.

The first poll comes at start (within a quarter second, so sources do not start in one burst),
then every `interval` plus up to `jitter_for(interval)` so sources sharing an interval drift
apart. A poll never overlaps the previous one of the same source (one task each), while
different sources poll concurrently. A due time that passes while the previous poll still runs
is skipped, not queued, and counted (`on_skip`). The backoff moves the next poll with
`postpone`. Due times are kept on the monotonic clock, so a step of the wall clock (NTP, a
resumed VM) neither stalls polling nor bursts it. The clock and the sleep are injectable, so
tests drive the schedule on a controlled clock instead of waiting (see tests/test_timetable.py
and tests/test_scheduler_core.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

FIRST_POLL_SPREAD = 0.25


def jitter_for(interval: float) -> float:
    """Up to 5 % of the interval (at most 5 s) so sources sharing an interval do not align."""
    return min(interval * 0.05, 5.0)


class Timetable:
    def __init__(
        self,
        poll: Callable[[str], Awaitable[object]],
        on_skip: Callable[[str, int], None],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self._poll = poll
        self._on_skip = on_skip
        self.clock = clock
        self._sleep = sleep
        self._uniform = uniform
        self._intervals: dict[str, float] = {}
        self._due: dict[str, float] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.running = False

    def add(self, name: str, interval: float) -> None:
        """Schedule a source; its first poll is due now."""
        self._intervals[name] = interval
        self._due[name] = self.clock() + self._uniform(0, FIRST_POLL_SPREAD)
        if self.running:
            self._launch(name)

    def start(self) -> None:
        self.running = True
        for name in self._intervals:
            self._launch(name)

    async def remove(self, name: str) -> None:
        """Unschedule a source, cancelling its poll if one runs."""
        self._intervals.pop(name, None)
        self._due.pop(name, None)
        task = self._tasks.pop(name, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def stop(self) -> None:
        self.running = False
        tasks = [task for task in self._tasks.values() if task is not asyncio.current_task()]
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def due(self, name: str) -> float | None:
        """When the source's next poll is due, on `clock`, or None when it is not scheduled."""
        return self._due.get(name)

    def due_at(self, name: str) -> float | None:
        """When the source's next poll is due as Unix time (for people: the landing page)."""
        due = self._due.get(name)
        return None if due is None else time.time() + (due - self.clock())

    def interval(self, name: str) -> float | None:
        return self._intervals.get(name)

    def postpone(self, name: str, delay: float) -> None:
        """Move the source's next poll to `delay` seconds from now (a retry after a failure)."""
        if name in self._due:
            self._due[name] = self.clock() + delay

    def _launch(self, name: str) -> None:
        self._tasks[name] = asyncio.get_running_loop().create_task(self._run(name), name=f"poll {name}")

    def _next_tick(self, after: float, interval: float) -> float:
        return after + interval + self._uniform(0, jitter_for(interval))

    async def _run(self, name: str) -> None:
        while self.running and name in self._due:
            wait = self._due[name] - self.clock()
            if wait > 0:
                await self._sleep(wait)
                continue
            interval = self._intervals[name]
            self._due[name] = self._next_tick(self._due[name], interval)
            try:
                await self._poll(name)
            except Exception:
                log.exception("poll bookkeeping failed; the source stays scheduled", extra={"source": name})
            self._skip_passed(name, interval)

    def _skip_passed(self, name: str, interval: float) -> None:
        """Due times that passed while the poll ran are skipped, not run back to back."""
        if name not in self._due:
            return
        now, skipped = self.clock(), 0
        while self._due[name] <= now:
            self._due[name] = self._next_tick(self._due[name], interval)
            skipped += 1
        if skipped:
            self._on_skip(name, skipped)
