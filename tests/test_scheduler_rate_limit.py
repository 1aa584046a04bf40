"""A 429 pauses the rate limiter that every source on the same credential shares."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from exporter.config import parse_config
from exporter.demo.lls import PATH
from exporter.metrics import AudienceStore, ExporterMetrics
from exporter.scheduler import CREDENTIAL_PAUSED, Scheduler
from exporter.sources import DEFAULT_RATE_LIMIT_PAUSE


def lls_source(name: str, base_url: str, key: str = "AK1") -> dict:
    return {
        "name": name,
        "provider": "lls",
        "base_url": base_url,
        "access_key_id": key,
        "access_key_secret": "s3cret-value",
        "domain": "live.example.com",
        "interval": "10s",
    }


async def scheduler_against(serve_app, tmp_path: Path, headers: dict[str, str]) -> Scheduler:
    async def viewers(request: web.Request) -> web.Response:
        return web.json_response({"code": "RateLimit.Exceeded", "message": "slow down"}, status=429, headers=headers)

    app = web.Application()
    app.router.add_get(PATH, viewers)
    base_url = await serve_app(app)
    sources = [lls_source("a", base_url), lls_source("b", base_url), lls_source("c", base_url, key="AK2")]
    config = parse_config({"global": {"state_dir": str(tmp_path)}, "sources": sources}, "test.yaml", tmp_path)
    scheduler = Scheduler(config, AudienceStore([], 300), ExporterMetrics("t", "3"))
    await scheduler.open()
    return scheduler


async def test_a_429_pauses_the_shared_key_for_its_retry_after(serve_app, tmp_path: Path) -> None:
    scheduler = await scheduler_against(serve_app, tmp_path, {"Retry-After": "120"})
    try:
        assert not await scheduler.poll("a")
        a, b, c = (scheduler.sources[name].fetcher.limiter for name in "abc")
        assert a is b and a is not c
        assert 119 < b.delay() <= 120
        assert c.delay() == 0
    finally:
        await scheduler.close()


async def test_a_429_without_retry_after_pauses_the_key_for_a_minute(serve_app, tmp_path: Path) -> None:
    scheduler = await scheduler_against(serve_app, tmp_path, {})
    try:
        assert not await scheduler.poll("a")
        delay = scheduler.sources["b"].fetcher.limiter.delay()
        assert DEFAULT_RATE_LIMIT_PAUSE - 1 < delay <= DEFAULT_RATE_LIMIT_PAUSE == 60
    finally:
        await scheduler.close()


async def test_the_source_that_got_the_429_waits_for_its_credentials_pause_not_just_its_backoff(
    serve_app, tmp_path: Path
) -> None:
    scheduler = await scheduler_against(serve_app, tmp_path, {"Retry-After": "²"})
    try:
        assert not await scheduler.poll("a")
        runtime = scheduler.sources["a"]
        assert runtime.interval < DEFAULT_RATE_LIMIT_PAUSE
        assert runtime.retry is not None and runtime.retry.why == CREDENTIAL_PAUSED
        assert DEFAULT_RATE_LIMIT_PAUSE - 1 < runtime.retry.delay <= DEFAULT_RATE_LIMIT_PAUSE
        assert runtime.status.is_rate_limited()
    finally:
        await scheduler.close()
