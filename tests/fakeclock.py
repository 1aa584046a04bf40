"""A controlled clock for scheduler tests (query-exporter's `advance_time` fixture is the model):
the timetable sleeps on it, and `advance` moves time forward, waking each sleeper at its own
time, in order, so a test covers an hour of schedule without waiting for it."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, seconds), next(self._order), future))
        await future

    @property
    def sleeping(self) -> int:
        return sum(1 for _, _, future in self._sleepers if not future.done())

    async def advance(self, seconds: float, sleepers: int | None = None) -> None:
        """Move time `seconds` forward. With `sleepers`, after each wake-up wait (in real time,
        for real loopback requests) until that many tasks sleep on the clock again, i.e. the
        woken poll has finished and planned its next one."""
        await self.settle(sleepers)
        target = self.now + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            when, _, future = heapq.heappop(self._sleepers)
            if future.done():
                continue
            self.now = max(self.now, when)
            future.set_result(None)
            await self.settle(sleepers)
        self.now = target
        await self.settle(sleepers)

    async def settle(self, sleepers: int | None) -> None:
        await asyncio.sleep(0)
        if sleepers is None:
            return
        deadline = time.monotonic() + 10
        while self.sleeping < sleepers:
            assert time.monotonic() < deadline, f"{self.sleeping} of {sleepers} tasks sleep on the clock after 10 s"
            await asyncio.sleep(0.001)
