"""Keeping the C allocator from holding on to memory after large answers, and the garbage
collector's full collections off the middle of large polls.

glibc serves allocations over a threshold (128 KiB at start) with their own mappings, returned to
the system when freed, but raises that threshold to the size of each such block freed (up to
32 MiB). After the first 8 MB answer is freed, every later answer and 1 MiB rendered block comes
from the heap instead, where a few live blocks keep the pages of dead ones resident: RSS grew by
a third over the first polls of a 100k-client Gcore source and stayed there. Pinning the
threshold keeps large blocks in their own mappings: measured, RSS after 8 polls of the same
answer within 6 % of the first instead of +35 %.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import time
from collections.abc import Awaitable, Callable

from exporter.slices import share_gil_promptly

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3
"""glibc's mallopt parameter number (malloc.h); setting it also turns off the dynamic raise."""
MMAP_THRESHOLD_BYTES = 128 * 1024


def pin_mmap_threshold() -> bool:
    """Pin glibc's mmap threshold; True when done, False on a C library without `mallopt`
    (musl, macOS), where there is nothing to pin."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    if mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) != 1:
        log.debug("mallopt refused to pin the mmap threshold")
        return False
    return True


YOUNG_THRESHOLDS = (700, 10)
"""CPython's own thresholds for the young generations (objects allocated, young collections):
a young collection walks at most a few thousand objects, well under a millisecond."""
NO_AUTOMATIC_FULL_COLLECTION = 1 << 30
"""Young-generation collections between two automatic full collections: never, in practice."""
FULL_COLLECTION_EVERY = 10.0
"""Seconds between two looks at the old generation."""
QUIET_OLD_OBJECTS = 10_000
"""A full collection is run when the old generation holds fewer objects than this (about 5 ms of
collection on a slow machine; with 20k, 8 ms were measured beside a 10k-stream poll): when no
large poll's objects are alive."""
LONGEST_WITHOUT_FULL_COLLECTION = 600.0
"""Seconds after which a full collection runs even if the old generation is never that small, so
garbage in reference cycles is still freed."""


async def collect_garbage_when_quiet(
    clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
) -> None:
    """Run the garbage collector's full collections from this task, at quiet moments, instead of
    letting CPython start one whenever a poll's young objects have piled up.

    CPython starts a full collection when the objects promoted since the last one reach a quarter
    of the old generation. With the long-lived state untracked and the start-up objects frozen,
    the old generation is small, so that happens in the middle of nearly every large poll and walks
    the poll's own objects still in flight (a Streams Charts poll of 10k streams: 100k objects,
    100 to 290 ms on this machine). Here automatic full collections are off and this task runs one
    every FULL_COLLECTION_EVERY seconds when the old generation is small (counting it costs about
    5 ms per 100k objects), or, failing that, after LONGEST_WITHOUT_FULL_COLLECTION. Each look
    that finds the old generation large doubles the wait before the next (a 10k-stream Streams
    Charts source kept ~100k objects there between polls: counting them held the loop up to 74 ms
    on a loaded machine). Young collections stay automatic, with `collect_young_generations`
    running one between turns every YOUNG_COLLECTION_EVERY seconds besides."""
    gc.set_threshold(*YOUNG_THRESHOLDS, NO_AUTOMATIC_FULL_COLLECTION)
    last = clock()
    wait = FULL_COLLECTION_EVERY
    while True:
        await sleep(wait)
        overdue = clock() - last >= LONGEST_WITHOUT_FULL_COLLECTION
        if overdue or len(gc.get_objects(generation=2)) < QUIET_OLD_OBJECTS:
            gc.collect()
            last = clock()
            wait = FULL_COLLECTION_EVERY
        else:
            wait = min(2 * wait, LONGEST_WITHOUT_FULL_COLLECTION)


YOUNG_COLLECTION_EVERY = 0.01
"""Seconds between two collections of the young generations by `collect_young_generations`."""


async def collect_young_generations(sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
    """Collect the young generations every YOUNG_COLLECTION_EVERY seconds, between turns of the
    event loop, so that no automatic young collection in the middle of a poll finds tens of
    thousands of objects.

    CPython counts a young collection due after 700 more allocations than deallocations, and
    counts the deallocation of *any* collectable object, old ones too. A poll that replaces what
    the previous one left (Streams Charts' remembered samples of 10k streams: about 1.5M tuples
    freed while as many are made) keeps that count near zero while the youngest generation grows
    to 30k objects; the collection that finally comes walks them all in one turn (10 to 45 ms,
    measured). Collected here, the young generations hold at most what 10 ms of work allocates
    (a poll of 10k streams allocates about 600k objects a second: 6 ms to walk what 50 ms left),
    and cost nothing when the exporter is idle."""
    while True:
        await sleep(YOUNG_COLLECTION_EVERY)
        gc.collect(1)


def start_housekeeping() -> list[asyncio.Task[None]]:
    """Set the process up as `serve` runs it, before the first poll, and start the collectors'
    tasks (the caller cancels them at the end). The benches call it too, so what they measure is
    what runs.

    What is loaded by then lives as long as the process: freezing it keeps every later full
    collection from walking it (a stall of tens of ms per collection otherwise)."""
    gc.freeze()
    pin_mmap_threshold()
    share_gil_promptly()
    return [asyncio.ensure_future(collect_garbage_when_quiet()), asyncio.ensure_future(collect_young_generations())]
