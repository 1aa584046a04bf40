"""The timetable alone, on a controlled clock: a retry moves the next poll, removing a source
ends its in-flight poll, and nothing runs before `start`."""

from __future__ import annotations

import asyncio

from exporter.timetable import Timetable
from tests.fakeclock import FakeClock


def no_skips(name: str, count: int) -> None:
    raise AssertionError(f"{name}: {count} polls skipped")


async def test_postpone_moves_the_next_poll_and_the_schedule_continues_from_there() -> None:
    clock = FakeClock()
    polls: list[float] = []

    async def poll(name: str) -> None:
        polls.append(clock())
        if len(polls) == 2:
            timetable.postpone(name, 300)

    timetable = Timetable(poll, no_skips, clock=clock, sleep=clock.sleep, uniform=lambda low, high: low)
    start = clock()
    timetable.add("a", 60)
    timetable.start()
    await clock.advance(1000, sleepers=1)
    assert [when - start for when in polls] == [0, 60, 360, 420, 480, 540, 600, 660, 720, 780, 840, 900, 960]
    await timetable.stop()


async def test_nothing_polls_before_start() -> None:
    clock = FakeClock()
    polls: list[str] = []

    async def poll(name: str) -> None:
        polls.append(name)

    timetable = Timetable(poll, no_skips, clock=clock, sleep=clock.sleep)
    timetable.add("a", 60)
    await clock.advance(600)
    assert polls == [] and timetable.due("a") is not None


async def test_removing_a_source_ends_its_in_flight_poll() -> None:
    clock = FakeClock()
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def poll(name: str) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    timetable = Timetable(poll, no_skips, clock=clock, sleep=clock.sleep)
    timetable.add("a", 60)
    timetable.start()
    await clock.advance(1)
    await asyncio.wait_for(started.wait(), 10)
    await timetable.remove("a")
    assert cancelled.is_set() and timetable.due("a") is None
