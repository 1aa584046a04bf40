"""The C allocator's mmap threshold is pinned where the C library has `mallopt` (glibc), and full
garbage collections run from the exporter's own task, at quiet moments."""

from __future__ import annotations

import asyncio
import gc
import platform
import sys
import weakref
from collections.abc import Iterator

import pytest

from exporter import memory
from exporter.memory import collect_garbage_when_quiet, collect_young_generations, pin_mmap_threshold
from exporter.slices import GIL_SWITCH_SECONDS


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_the_mmap_threshold_is_pinned_on_glibc() -> None:
    assert pin_mmap_threshold() is True


class _Cycle:
    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def collector_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    thresholds = gc.get_threshold()
    monkeypatch.setattr(memory, "FULL_COLLECTION_EVERY", 0.0)
    yield
    gc.set_threshold(*thresholds)


def old_garbage_cycle() -> weakref.ref[_Cycle]:
    """A reference cycle that reached the old generation while alive, then became garbage: only
    a full collection frees it."""
    cycle = _Cycle()
    gc.collect(1)
    return weakref.ref(cycle)


async def turns(task: asyncio.Task[None], count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)
    task.cancel()


async def test_cycles_in_the_old_generation_are_freed_by_the_task_when_it_is_small(
    collector_settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory, "QUIET_OLD_OBJECTS", len(gc.get_objects(generation=2)) + 10_000)
    task = asyncio.ensure_future(collect_garbage_when_quiet())
    await asyncio.sleep(0)
    freed = old_garbage_cycle()
    await turns(task, 3)
    assert freed() is None


async def test_no_full_collection_starts_by_itself_once_the_task_runs(collector_settings) -> None:
    task = asyncio.ensure_future(collect_garbage_when_quiet())
    await asyncio.sleep(0)
    task.cancel()
    kept = old_garbage_cycle()
    for _ in range(200):
        [[object()] for _ in range(10_000)]
    assert kept() is not None
    gc.collect()


async def test_a_large_old_generation_is_collected_only_after_the_longest_wait(
    collector_settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory, "QUIET_OLD_OBJECTS", 0)
    now = [0.0]
    task = asyncio.ensure_future(collect_garbage_when_quiet(clock=lambda: now[0]))
    await asyncio.sleep(0)
    kept = old_garbage_cycle()
    await turns(task, 3)
    waited = kept() is not None
    task = asyncio.ensure_future(collect_garbage_when_quiet(clock=lambda: now[0]))
    await asyncio.sleep(0)
    now[0] = memory.LONGEST_WITHOUT_FULL_COLLECTION
    await turns(task, 3)
    assert (waited, kept()) == (True, None)


async def test_each_look_at_a_large_old_generation_doubles_the_wait_before_the_next(
    collector_settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory, "QUIET_OLD_OBJECTS", 0)
    monkeypatch.setattr(memory, "FULL_COLLECTION_EVERY", 10.0)
    waits: list[float] = []

    async def recorded(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 5:
            raise asyncio.CancelledError
        await asyncio.sleep(0)

    with pytest.raises(asyncio.CancelledError):
        await collect_garbage_when_quiet(clock=lambda: 0.0, sleep=recorded)
    assert waits == [10.0, 20.0, 40.0, 80.0, 160.0]


async def test_the_young_generations_are_collected_between_turns_however_many_old_objects_die() -> None:
    old = [[[i], [i]] for i in range(50_000)]
    gc.collect()
    waits: list[float] = []

    async def recorded(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            raise asyncio.CancelledError

    young = []
    for i in range(5_000):
        young.append([i])
        del old[-1]
    before = len(gc.get_objects(generation=0))
    with pytest.raises(asyncio.CancelledError):
        await collect_young_generations(sleep=recorded)
    assert before >= 4_000
    assert len(gc.get_objects(generation=0)) + len(gc.get_objects(generation=1)) < 1_000
    assert waits == [memory.YOUNG_COLLECTION_EVERY] * 2
    assert len(young) == 5_000


@pytest.fixture
def process_settings(collector_settings: None) -> Iterator[None]:
    switch = sys.getswitchinterval()
    yield
    gc.unfreeze()
    sys.setswitchinterval(switch)


async def test_housekeeping_freezes_what_is_loaded_and_starts_both_collectors(process_settings: None) -> None:
    tasks = memory.start_housekeeping()
    await asyncio.sleep(0)
    try:
        assert gc.get_freeze_count() > 0
        assert sys.getswitchinterval() == pytest.approx(GIL_SWITCH_SECONDS)
        assert gc.get_threshold()[2] == memory.NO_AUTOMATIC_FULL_COLLECTION
        assert [task.done() for task in tasks] == [False, False]
    finally:
        for task in tasks:
            task.cancel()
