"""Nothing a vendor sends can wedge a source: any exception while polling or applying the answer
is a failed poll (source_up 0, one log line, backoff), bad characters are replaced so the data
still publishes, and readiness only needs every source to have been tried."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from exporter.config import parse_config
from exporter.demo import serve
from exporter.demo.streamscharts import StreamsChartsSimulator
from exporter.families import AUDIENCE_FAMILIES
from exporter.metrics import AudienceStore, ExporterMetrics, Exposition
from exporter.poll import PollResult
from exporter.scheduler import Scheduler

GCORE_VIEWERS = "/streaming/statistics/stream/viewers"


def gcore(name: str, base_url: str) -> dict[str, Any]:
    return {"name": name, "provider": "gcore", "base_url": base_url, "api_key": "k3y-value", "stream_ids": [1]}


async def scheduler_for(tmp_path: Path, sources: list[dict[str, Any]], store: AudienceStore | None = None) -> Scheduler:
    config = parse_config({"global": {"state_dir": str(tmp_path)}, "sources": sources}, "t.yaml", tmp_path)
    scheduler = Scheduler(config, store or AudienceStore(AUDIENCE_FAMILIES, 300), ExporterMetrics("t", "3"))
    await scheduler.open()
    scheduler.start(paused=True)
    return scheduler


def up(scheduler: Scheduler, source: str) -> float | None:
    provider = scheduler.sources[source].identity.provider
    return scheduler.metrics.registry.get_sample_value(
        "livestream_exporter_source_up", {"source": source, "provider": provider}
    )


def poll_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("exporter")]


class StoreThatFailsOnce(AudienceStore):
    """An audience store whose first apply raises, as a bug in applying an answer would."""

    def __init__(self) -> None:
        super().__init__(AUDIENCE_FAMILIES, 300)
        self.failed = False

    async def apply_sliced(self, source: str, result: PollResult, now: float) -> None:
        if not self.failed and result.samples:
            self.failed = True
            raise ValueError("cannot apply this answer")
        await super().apply_sliced(source, result, now)


async def test_an_exception_while_applying_the_answer_is_a_failed_poll(
    serve_app: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def no_streams(request: web.Request) -> web.Response:
        return web.json_response([])

    app = web.Application()
    app.router.add_get(GCORE_VIEWERS, no_streams)
    scheduler = await scheduler_for(tmp_path, [gcore("g", await serve_app(app))], StoreThatFailsOnce())
    caplog.set_level(logging.DEBUG)
    try:
        assert await scheduler.poll("g") is False
        runtime = scheduler.sources["g"]
        assert up(scheduler, "g") == 0
        assert runtime.status.last_error == "internal error: ValueError: cannot apply this answer"
        assert runtime.retry is not None
        assert [r.getMessage() for r in poll_warnings(caplog)] == ["poll failed"]
        assert scheduler.ready(), "a source that was tried counts for readiness"
        assert await scheduler.poll("g") is True
        assert up(scheduler, "g") == 1
    finally:
        await scheduler.close()


async def test_a_lone_surrogate_in_a_vendor_title_is_replaced_and_the_data_publishes(tmp_path: Path) -> None:
    simulator = StreamsChartsSimulator()
    key = next(key for key, stream in simulator.streams.items() if stream.end is None)
    simulator.streams[key] = dataclasses.replace(simulator.streams[key], title="cut inside an emoji \ud800")
    runner, base_url = await serve(simulator.app())
    store = AudienceStore(AUDIENCE_FAMILIES, 300)
    scheduler = await scheduler_for(tmp_path, simulator.demo_sources(base_url), store)
    try:
        assert await scheduler.poll("demo-streamscharts") is True
        assert up(scheduler, "demo-streamscharts") == 1
        body = Exposition(store, scheduler.metrics).body(openmetrics=False).decode()
        assert 'title="cut inside an emoji ?"' in body
        assert body.count("livestream_stream_info{") == len(simulator.demo_sources(base_url)[0]["streams"])
    finally:
        await scheduler.close()
        await runner.cleanup()


async def test_json_nested_100k_deep_is_an_invalid_body_said_once_at_warning(
    serve_app: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def deep(request: web.Request) -> web.Response:
        return web.Response(text="[" * 100_000 + "]" * 100_000, content_type="application/json")

    app = web.Application()
    app.router.add_get(GCORE_VIEWERS, deep)
    scheduler = await scheduler_for(tmp_path, [gcore("g", await serve_app(app))])
    caplog.set_level(logging.INFO)
    try:
        assert await scheduler.poll("g") is False
        assert await scheduler.poll("g") is False
        codes = {
            sample.labels["code"]
            for family in scheduler.metrics.registry.collect()
            for sample in family.samples
            if sample.name == "livestream_exporter_requests_total"
        }
        assert codes == {"invalid_body"}
        assert [(r.levelno, r.getMessage()) for r in poll_warnings(caplog)] == [(logging.WARNING, "poll failed")]
    finally:
        await scheduler.close()
