"""Sliding-window rate budgets shared by every source that uses one vendor credential.

A fixed poll interval is not enough: several sources (or a retry) on one key can burst past a
vendor's "100 per minute, 1000 per hour". The limiter remembers when each request was sent and
makes the next one wait until it fits every window; a 429 pauses the whole key.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

from exporter.backoff import MAX_RETRY_AFTER
from exporter.poll import RateLimit


class SlidingWindowLimiter:
    def __init__(
        self,
        limits: tuple[RateLimit, ...],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._sleep = sleep
        self._sent: list[deque[float]] = [deque() for _ in limits]
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    def delay(self) -> float:
        """Seconds until one more request fits every window (0 when it fits now)."""
        now = self._clock()
        delay = max(0.0, self._paused_until - now)
        for limit, sent in zip(self.limits, self._sent, strict=True):
            while sent and sent[0] <= now - limit.per_seconds:
                sent.popleft()
            if len(sent) >= limit.requests:
                delay = max(delay, sent[len(sent) - limit.requests] + limit.per_seconds - now)
        return delay

    async def acquire(self) -> float:
        """Wait until a request fits, record it, and return how long it waited."""
        waited = 0.0
        async with self._lock:
            while (delay := self.delay()) > 0:
                await self._sleep(delay)
                waited += delay
            now = self._clock()
            for sent in self._sent:
                sent.append(now)
        return waited

    def pause(self, seconds: float) -> None:
        """Hold every request on this key for `seconds` (the vendor answered 429), at most
        `MAX_RETRY_AFTER`."""
        self._paused_until = max(self._paused_until, self._clock() + min(seconds, MAX_RETRY_AFTER))
