"""Scheduler, on a controlled clock: the first poll runs at start, then every interval with a
little jitter; polls of one source never overlap and due times passed meanwhile are skipped
and counted; different sources poll concurrently; and a source is back within two intervals
of its vendor healing, after an outage of any length, without more calls than its schedule."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

from aiohttp import web

from exporter.config import parse_config
from exporter.metrics import AudienceStore
from exporter.scheduler import USER_AGENT, Scheduler
from exporter.selfmetrics import ExporterMetrics
from exporter.timetable import FIRST_POLL_SPREAD, jitter_for
from tests.fakeclock import FakeClock

VIEWERS = "/streaming/statistics/stream/viewers"


def make_scheduler(tmp_path: Path, sources: list[dict], clock: FakeClock | None = None) -> Scheduler:
    config = parse_config({"global": {"state_dir": str(tmp_path)}, "sources": sources}, "test.yaml", tmp_path)
    store = AudienceStore([], config.global_.stale_after)
    if clock is None:
        return Scheduler(config, store, ExporterMetrics("t", "3"))
    return Scheduler(config, store, ExporterMetrics("t", "3"), clock=clock, sleep=clock.sleep)


def gcore_source(name: str, base_url: str, **extra: object) -> dict:
    return {"name": name, "provider": "gcore", "base_url": base_url, "api_key": "1$key-abcdef", **extra}


def counter(scheduler: Scheduler, name: str, source: str) -> float | None:
    return scheduler.metrics.registry.get_sample_value(name, {"source": source, "provider": "gcore"})


async def vendor(serve_app: Any, handler: Any) -> str:
    app = web.Application()
    app.router.add_get(VIEWERS, handler)
    return await serve_app(app)


def test_jitter_is_small_and_capped() -> None:
    assert jitter_for(60) == 3.0
    assert jitter_for(3600) == 5.0


async def test_the_first_poll_runs_at_start_then_every_interval_with_jitter(serve_app: Any, tmp_path: Path) -> None:
    polled_at: list[float] = []
    agents: set[str] = set()
    clock = FakeClock()

    async def viewers(request: web.Request) -> web.Response:
        polled_at.append(clock())
        agents.add(request.headers["User-Agent"])
        return web.json_response([])

    base_url = await vendor(serve_app, viewers)
    scheduler = make_scheduler(tmp_path, [gcore_source("a", base_url, stream_ids=[1], interval="5m")], clock)
    started = clock()
    await scheduler.open()
    scheduler.start()
    try:
        await clock.advance(FIRST_POLL_SPREAD, sleepers=1)
        assert len(polled_at) == 1 and polled_at[0] - started <= FIRST_POLL_SPREAD
        await clock.advance(3600, sleepers=1)
        gaps = [later - earlier for earlier, later in itertools.pairwise(polled_at)]
        assert len(gaps) in (11, 12)
        assert all(300 <= gap <= 300 + jitter_for(300) for gap in gaps), gaps
        assert agents == {USER_AGENT}
    finally:
        await scheduler.close()


async def test_a_held_poll_is_never_overlapped_and_passed_due_times_are_counted_skipped(
    serve_app: Any, tmp_path: Path
) -> None:
    release = asyncio.Event()
    in_flight: dict[str, int] = {}
    most_in_flight: dict[str, int] = {}

    async def held(request: web.Request) -> web.Response:
        stream = request.query["stream_id"]
        in_flight[stream] = in_flight.get(stream, 0) + 1
        most_in_flight[stream] = max(most_in_flight.get(stream, 0), in_flight[stream])
        await release.wait()
        in_flight[stream] -= 1
        return web.json_response([])

    clock = FakeClock()
    base_url = await vendor(serve_app, held)
    sources = [
        gcore_source(name, base_url, stream_ids=[stream], interval="10s") for name, stream in (("a", 1), ("b", 2))
    ]
    scheduler = make_scheduler(tmp_path, sources, clock)
    await scheduler.open()
    scheduler.start()
    try:
        await clock.advance(FIRST_POLL_SPREAD)
        async with asyncio.timeout(10):
            while sum(in_flight.values()) < 2:
                await asyncio.sleep(0.001)
        await clock.advance(95)
        assert in_flight == {"1": 1, "2": 1}, "both sources poll at once, each only once"
        release.set()
        await clock.settle(sleepers=2)
        assert most_in_flight == {"1": 1, "2": 1}
        for name in "ab":
            assert scheduler.sources[name].status.polls == 1, "passed due times are not run back to back"
            assert counter(scheduler, "livestream_exporter_polls_skipped_total", name) == 9
            assert scheduler.timetable.due(name) > clock()
    finally:
        await scheduler.close()


async def test_after_an_hour_long_outage_the_source_is_back_within_two_intervals_of_healing(
    serve_app: Any, tmp_path: Path
) -> None:
    clock = FakeClock()
    calls: list[float] = []
    healthy = False

    async def viewers(request: web.Request) -> web.Response:
        calls.append(clock())
        if not healthy:
            return web.json_response({"errors": ["maintenance"]}, status=503)
        return web.json_response([])

    base_url = await vendor(serve_app, viewers)
    scheduler = make_scheduler(tmp_path, [gcore_source("a", base_url, stream_ids=[1], interval="1m")], clock)
    await scheduler.open()
    scheduler.start()
    try:
        await clock.advance(3600, sleepers=1)
        assert scheduler.sources["a"].status.up is False
        assert 30 <= len(calls) <= 61, "an outage never gets more calls than the normal schedule"
        healthy, healed_at = True, clock()
        while not scheduler.sources["a"].status.up:
            await clock.advance(1, sleepers=1)
        assert calls[-1] - healed_at <= 2 * 60
    finally:
        await scheduler.close()
