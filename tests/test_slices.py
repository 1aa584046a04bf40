"""Sharing the event loop: work sliced by time hands the loop back once a turn's share is spent
(and only then), tasks sharing one share go on together in the next turn, every poll shares the
process's one share with all other sliced work, and the loop's thread gets the GIL back from
worker threads promptly."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from types import SimpleNamespace

import pytest

from exporter.polling import CountingFetch
from exporter.slices import GIL_SWITCH_SECONDS, LOOP_SHARE, TurnShare, share_gil_promptly
from tests.fakeclock import FakeClock
from tests.turns import Ticker


async def turns_taken(waits: int, work_between: float) -> int:
    """Turns the loop took while one task waited on a 2 ms share `waits` times, working
    `work_between` seconds of a controlled clock before each wait."""
    clock = FakeClock()
    share = TurnShare(seconds=0.002, clock=clock)
    async with Ticker().running() as ticker:
        for _ in range(waits):
            clock.now += work_between
            await share.wait()
    return ticker.turns


async def test_work_within_its_share_keeps_the_turn() -> None:
    assert await turns_taken(10, work_between=0.0001) == 0


async def test_work_past_its_share_goes_on_in_the_next_turn() -> None:
    assert await turns_taken(5, work_between=0.003) >= 5


async def test_tasks_sharing_a_spent_share_all_go_on_in_the_same_next_turn() -> None:
    clock = FakeClock()
    share = TurnShare(seconds=0.002, clock=clock)
    clock.now += 0.003
    ticker = Ticker()
    resumed: list[int] = []

    async def one() -> None:
        await share.wait()
        resumed.append(ticker.turns)

    async with ticker.running():
        await asyncio.gather(*(one() for _ in range(10)))
    assert len(resumed) == 10 and len(set(resumed)) == 1 and resumed[0] >= 1


@pytest.fixture
def switch_interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


def test_the_loops_thread_gets_the_gil_back_within_a_millisecond(switch_interval: None) -> None:
    sys.setswitchinterval(0.005)
    share_gil_promptly()
    assert sys.getswitchinterval() == pytest.approx(GIL_SWITCH_SECONDS) and GIL_SWITCH_SECONDS <= 0.001


class InstantFetch:
    """A source's fetcher whose answers are already there."""

    @asynccontextmanager
    async def get(self, endpoint: str, url: str, **_: object) -> AsyncIterator[SimpleNamespace]:
        yield SimpleNamespace(status=200)


async def test_a_poll_waits_for_the_next_turn_once_other_work_spent_the_processs_share(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(LOOP_SHARE, "started", LOOP_SHARE.clock() - 1.0)
    fetch = CountingFetch(InstantFetch())  # type: ignore[arg-type]
    async with Ticker().running() as ticker, fetch.get("viewers", "http://vendor.test/"):
        pass
    assert ticker.turns >= 1
