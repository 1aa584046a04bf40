"""`Retry-After` is capped at an hour everywhere it is honoured, an unreadable one is ignored, and
a source waiting for it says so (`source_rate_limited` 1, the landing page) instead of holding
its poll, so `source_up` and readiness tell the truth while a key is paused."""

from __future__ import annotations

import asyncio
import logging
import time
from email.utils import formatdate
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from exporter.backoff import MAX_RETRY_AFTER
from exporter.config import parse_config
from exporter.demo.lls import PATH
from exporter.fetch import parse_retry_after
from exporter.metrics import AudienceStore, ExporterMetrics, Exposition
from exporter.poll import RateLimit
from exporter.ratelimit import SlidingWindowLimiter
from exporter.scheduler import Scheduler
from exporter.web import build_app

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 60 ", 60.0),
        ("0", 0.0),
        ("7200", MAX_RETRY_AFTER),
        ("999999999", MAX_RETRY_AFTER),
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER),
        (formatdate(NOW + 90, usegmt=True), 90.0),
        (formatdate(NOW - 90, usegmt=True), 0.0),
    ],
)
def test_retry_after_is_read_and_capped_at_an_hour(header: str, seconds: float) -> None:
    assert parse_retry_after(header, NOW) == pytest.approx(seconds)


@pytest.mark.parametrize("header", ["²", "١٢٠", "1e3", "-5", "soon", "Fri, 31 Dec 99999 23:59:59 GMT"])
def test_an_unreadable_retry_after_is_ignored_with_a_debug_line(header: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="exporter.fetch")
    assert parse_retry_after(header, NOW) is None
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [(logging.DEBUG, "unreadable Retry-After ignored")]


def test_the_shared_limiter_caps_a_pause_at_an_hour() -> None:
    now = [0.0]
    limiter = SlidingWindowLimiter((RateLimit(100, 60),), clock=lambda: now[0])
    limiter.pause(999_999_999)
    assert limiter.delay() == MAX_RETRY_AFTER


def lls_source(name: str, base_url: str) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "lls",
        "base_url": base_url,
        "access_key_id": "AK1",
        "access_key_secret": "s3cret-value",
        "domain": "live.example.com",
        "interval": "20s",
    }


def gauge(scheduler: Scheduler, name: str, source: str) -> float | None:
    return scheduler.metrics.registry.get_sample_value(name, {"source": source, "provider": "lls"})


async def test_a_source_on_a_paused_key_fails_at_once_as_rate_limited_and_counts_as_tried(
    serve_app: Any, tmp_path: Path
) -> None:
    asked: list[str] = []

    async def rate_limited(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.json_response(
            {"code": "RateLimit.Exceeded", "message": "slow down"}, status=429, headers={"Retry-After": "7200"}
        )

    vendor = web.Application()
    vendor.router.add_get(PATH, rate_limited)
    base_url = await serve_app(vendor)
    config = parse_config(
        {"global": {"state_dir": str(tmp_path)}, "sources": [lls_source("a", base_url), lls_source("b", base_url)]},
        "t.yaml",
        tmp_path,
    )
    store = AudienceStore([], 300)
    scheduler = Scheduler(config, store, ExporterMetrics("t", "3"))
    await scheduler.open()
    scheduler.start(paused=True)
    try:
        assert await scheduler.poll("a") is False
        sent = len(asked)
        assert await asyncio.wait_for(scheduler.poll("b"), timeout=30) is False, "b must not wait out the pause"
        assert len(asked) == sent, "no request is sent while the key is paused"

        b = scheduler.sources["b"]
        assert b.status.last_error is not None and "rate budget" in b.status.last_error
        assert b.retry is not None and MAX_RETRY_AFTER - 5 < b.retry.delay <= MAX_RETRY_AFTER
        for source in "ab":
            assert gauge(scheduler, "livestream_exporter_source_up", source) == 0
            assert gauge(scheduler, "livestream_exporter_source_rate_limited", source) == 1
        assert scheduler.ready()

        page = await serve_app(build_app(scheduler, Exposition(store, scheduler.metrics), "/metrics"))
        async with aiohttp.ClientSession() as session:
            async with session.get(page + "/") as response:
                assert (await response.text()).count("down, rate limited") == 2
            async with session.get(page + "/-/ready") as response:
                assert response.status == 200
    finally:
        await scheduler.close()


async def test_the_rate_limited_gauge_falls_to_0_when_the_wait_is_over(tmp_path: Path) -> None:
    config = parse_config(
        {"global": {"state_dir": str(tmp_path)}, "sources": [lls_source("a", "http://127.0.0.1:9")]},
        "t.yaml",
        tmp_path,
    )
    scheduler = Scheduler(config, AudienceStore([], 300), ExporterMetrics("t", "3"))
    await scheduler.open()
    try:
        assert gauge(scheduler, "livestream_exporter_source_rate_limited", "a") == 0
        scheduler.sources["a"].status.waiting(3600)
        assert gauge(scheduler, "livestream_exporter_source_rate_limited", "a") == 1
        scheduler.sources["a"].status.rate_limited_until = time.time() - 1
        assert gauge(scheduler, "livestream_exporter_source_rate_limited", "a") == 0
    finally:
        await scheduler.close()
