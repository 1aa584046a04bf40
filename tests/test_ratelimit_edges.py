"""The sliding-window limiter at its edges, on a controlled clock (no real sleeps): exactly the
budget passes, the next request waits until the oldest leaves the window, and a pause holds all."""

from __future__ import annotations

from exporter.poll import RateLimit
from exporter.ratelimit import SlidingWindowLimiter

LLS_LIMITS = (RateLimit(100, 60), RateLimit(1000, 3600))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(clock: Clock) -> SlidingWindowLimiter:
    return SlidingWindowLimiter(LLS_LIMITS, clock=clock, sleep=clock.sleep)


async def test_exactly_one_hundred_in_a_minute_pass_without_waiting() -> None:
    clock = Clock()
    budget = limiter(clock)
    waits = [await budget.acquire() for _ in range(100)]
    assert waits == [0.0] * 100
    assert clock.slept == []


async def test_the_hundred_and_first_waits_until_the_first_leaves_the_minute() -> None:
    clock = Clock()
    budget = limiter(clock)
    for _ in range(100):
        await budget.acquire()
    clock.now = 10.0
    assert budget.delay() == 50.0
    assert await budget.acquire() == 50.0
    assert clock.now == 60.0


async def test_a_request_just_before_the_window_slides_still_waits() -> None:
    clock = Clock()
    budget = limiter(clock)
    for _ in range(100):
        await budget.acquire()
    clock.now = 59.999
    assert budget.delay() > 0
    clock.now = 60.0
    assert budget.delay() == 0.0


async def test_the_window_slides_rather_than_resetting_on_the_minute() -> None:
    clock = Clock()
    budget = limiter(clock)
    for second in range(100):
        clock.now = 30.0 + second * 0.25
        await budget.acquire()
    clock.now = 61.0
    assert budget.delay() == 29.0


async def test_the_hourly_cap_holds_the_thousand_and_first_until_the_first_is_an_hour_old() -> None:
    clock = Clock()
    budget = limiter(clock)
    for _ in range(1000):
        await budget.acquire()
    assert clock.now == 540.0
    assert clock.slept == [60.0] * 9
    assert budget.delay() == 3060.0
    assert await budget.acquire() == 3060.0
    assert clock.now == 3600.0


async def test_a_pause_holds_every_request_even_with_budget_left() -> None:
    clock = Clock()
    budget = limiter(clock)
    await budget.acquire()
    budget.pause(120.0)
    assert budget.delay() == 120.0
    assert await budget.acquire() == 120.0
