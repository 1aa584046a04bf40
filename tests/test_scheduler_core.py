"""Scheduler: one job per source, first poll at start, never two polls of one source at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from exporter.config import parse_config
from exporter.metrics import AudienceStore, ExporterMetrics
from exporter.scheduler import USER_AGENT, Scheduler, jitter_for


def make_scheduler(tmp_path: Path, sources: list[dict]) -> Scheduler:
    config = parse_config({"global": {"state_dir": str(tmp_path)}, "sources": sources}, "test.yaml", tmp_path)
    return Scheduler(config, AudienceStore([], config.global_.stale_after), ExporterMetrics("t", "3"))


def gcore_source(name: str, base_url: str, **extra: object) -> dict:
    return {"name": name, "provider": "gcore", "base_url": base_url, "api_key": "1$key-abcdef", **extra}


async def test_every_source_gets_one_job_whose_first_run_is_now(tmp_path: Path) -> None:
    scheduler = make_scheduler(
        tmp_path, [gcore_source("a", "http://127.0.0.1:9"), gcore_source("b", "http://127.0.0.1:9", interval="5m")]
    )
    await scheduler.open()
    scheduler.start()
    try:
        jobs = {job.id: job for job in scheduler._aps.get_jobs()}
        assert set(jobs) == {"a", "b"}
        for job in jobs.values():
            assert job.max_instances == 1
            assert (job.next_run_time - datetime.now(UTC)).total_seconds() < 1
        assert jobs["b"].trigger.interval.total_seconds() == 300
        assert jobs["a"].trigger.interval.total_seconds() == 60
        assert jobs["b"].trigger.jitter == jitter_for(300)
    finally:
        await scheduler.close()


def test_jitter_is_small_and_capped() -> None:
    assert jitter_for(60) == 3.0
    assert jitter_for(3600) == 5.0


async def test_polls_of_one_source_never_overlap_while_sources_poll_concurrently(serve_app, tmp_path: Path) -> None:
    in_flight: dict[str, int] = {}
    overlap: list[str] = []
    agents: set[str] = set()

    async def slow(request: web.Request) -> web.Response:
        stream = request.query["stream_id"]
        agents.add(request.headers["User-Agent"])
        in_flight[stream] = in_flight.get(stream, 0) + 1
        if in_flight[stream] > 1:
            overlap.append(stream)
        await asyncio.sleep(0.3)
        in_flight[stream] -= 1
        return web.json_response([])

    app = web.Application()
    app.router.add_get("/streaming/statistics/stream/viewers", slow)
    base_url = await serve_app(app)
    scheduler = make_scheduler(
        tmp_path,
        [
            gcore_source("a", base_url, stream_ids=[1], interval="100ms"),
            gcore_source("b", base_url, stream_ids=[2], interval="100ms"),
        ],
    )
    await scheduler.open()
    scheduler.start()
    await asyncio.sleep(1.0)
    await scheduler.close()
    assert overlap == []
    assert scheduler.sources["a"].polls >= 2 and scheduler.sources["b"].polls >= 2
    assert agents == {USER_AGENT}


async def test_a_poll_due_while_the_previous_still_runs_is_counted_as_skipped(serve_app, tmp_path: Path) -> None:
    release = asyncio.Event()

    async def held(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response([])

    app = web.Application()
    app.router.add_get("/streaming/statistics/stream/viewers", held)
    scheduler = make_scheduler(tmp_path, [gcore_source("a", await serve_app(app), stream_ids=[1], interval="100ms")])
    await scheduler.open()
    scheduler.start()

    def skipped() -> float:
        return scheduler.metrics.registry.get_sample_value(
            "livestream_exporter_polls_skipped_total", {"source": "a", "provider": "gcore"}
        )

    try:
        assert skipped() == 0
        async with asyncio.timeout(30):
            while skipped() < 2:
                await asyncio.sleep(0.05)
        assert scheduler.sources["a"].polls == 0, "the first poll is still held"
    finally:
        release.set()
        await scheduler.close()
