"""Counters from vendor running totals: never down, at a day change, a revision, a restart, a day
leaving the window. Driven through a real scheduler, a real state directory and a loopback vendor
(Cloudflare's day-wise totals), and read back as exposition text."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import parse_config
from exporter.families import AUDIENCE_FAMILIES
from exporter.metrics import AudienceStore, ExporterMetrics
from exporter.scheduler import Scheduler
from tests.audience import audience_body

ROUTE = "/accounts/acc/realtime/kit/app/analytics/livestreams/daywise"


class Vendor:
    """A Cloudflare stand-in whose next answer the test sets."""

    def __init__(self) -> None:
        self.days: dict[str, int] = {}

    def answer(self, **days: int) -> None:
        """Totals by day, named `d1`, `d2`, `d3`: the day before yesterday, yesterday and today (UTC),
        so the days are ones a vendor could still revise (older ones are folded, see test_state_counters)."""
        today = datetime.now(UTC).date()
        self.days = {(today - timedelta(days=3 - int(day[1:]))).isoformat(): count for day, count in days.items()}

    async def handle(self, request: web.Request) -> web.Response:
        data = [{"count": count, "date": day} for day, count in self.days.items()]
        return web.json_response({"data": data, "success": True})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(ROUTE, self.handle)
        return app


class Exporter:
    """A scheduler over one Cloudflare source and a state dir, as a restartable unit."""

    def __init__(self, base_url: str, state_dir: Path) -> None:
        source = {
            "name": "cf",
            "provider": "cloudflare",
            "base_url": base_url,
            "api_token": "t0ken-abcdef",
            "account_id": "acc",
            "app_id": "app",
        }
        config = parse_config({"global": {"state_dir": str(state_dir)}, "sources": [source]}, "<test>", state_dir)
        self.store = AudienceStore(AUDIENCE_FAMILIES, 300.0)
        self.metrics = ExporterMetrics("test", "3")
        self.scheduler = Scheduler(config, self.store, self.metrics)

    async def __aenter__(self) -> Exporter:
        await self.scheduler.open()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.scheduler.close()

    async def sessions_after_poll(self) -> float | None:
        assert await self.scheduler.poll("cf")
        return self.sessions()

    def sessions(self) -> float | None:
        text = audience_body(self.store, False).decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "livestream_sessions_total":
                    return sample.value
        return None


async def test_today_grows_and_a_new_day_starts_at_its_own_value(serve_app, tmp_path: Path) -> None:
    vendor = Vendor()
    base_url = await serve_app(vendor.app())
    async with Exporter(base_url, tmp_path) as exporter:
        vendor.answer(d1=3)
        assert await exporter.sessions_after_poll() == 3
        vendor.answer(d1=5)
        assert await exporter.sessions_after_poll() == 5
        vendor.answer(d1=5, d2=1)
        assert await exporter.sessions_after_poll() == 6
        vendor.answer(d1=5, d2=4)
        assert await exporter.sessions_after_poll() == 9


async def test_a_downward_revision_never_lowers_the_counter(serve_app, tmp_path: Path) -> None:
    vendor = Vendor()
    base_url = await serve_app(vendor.app())
    async with Exporter(base_url, tmp_path) as exporter:
        vendor.answer(d1=7, d2=2)
        assert await exporter.sessions_after_poll() == 9
        vendor.answer(d1=4, d2=3)
        assert await exporter.sessions_after_poll() == 10


async def test_a_day_leaving_the_window_keeps_its_count(serve_app, tmp_path: Path) -> None:
    vendor = Vendor()
    base_url = await serve_app(vendor.app())
    async with Exporter(base_url, tmp_path) as exporter:
        vendor.answer(d1=7, d2=2)
        assert await exporter.sessions_after_poll() == 9
        vendor.answer(d2=2, d3=1)
        assert await exporter.sessions_after_poll() == 10
        vendor.answer()
        assert await exporter.sessions_after_poll() == 10


async def test_a_restart_continues_from_the_state_file_without_counting_twice(serve_app, tmp_path: Path) -> None:
    vendor = Vendor()
    base_url = await serve_app(vendor.app())
    vendor.answer(d1=7, d2=2)
    async with Exporter(base_url, tmp_path) as exporter:
        assert await exporter.sessions_after_poll() == 9
    assert json.loads((tmp_path / "cf.json").read_text())["counters"]
    async with Exporter(base_url, tmp_path) as restarted:
        assert await restarted.sessions_after_poll() == 9
        vendor.answer(d2=3, d3=1)
        assert await restarted.sessions_after_poll() == 11


async def test_a_restart_after_a_downward_revision_and_a_dropped_day_keeps_the_highest_totals(
    serve_app, tmp_path: Path
) -> None:
    vendor = Vendor()
    base_url = await serve_app(vendor.app())
    vendor.answer(d1=7, d2=2)
    async with Exporter(base_url, tmp_path) as exporter:
        await exporter.sessions_after_poll()
    vendor.answer(d2=1, d3=0)
    async with Exporter(base_url, tmp_path) as restarted:
        assert await restarted.sessions_after_poll() == 9


async def test_without_a_state_file_a_counter_starts_from_the_totals_in_the_window(serve_app, tmp_path: Path) -> None:
    vendor = Vendor()
    base_url = await serve_app(vendor.app())
    vendor.answer(d1=7, d2=2)
    async with Exporter(base_url, tmp_path / "a") as exporter:
        assert await exporter.sessions_after_poll() == 9
    async with Exporter(base_url, tmp_path / "b") as fresh:
        assert await fresh.sessions_after_poll() == 9


async def test_an_unreadable_state_file_starts_fresh_instead_of_failing(serve_app, tmp_path: Path) -> None:
    vendor = Vendor()
    base_url = await serve_app(vendor.app())
    (tmp_path / "cf.json").write_text("{not json")
    vendor.answer(d1=4)
    async with Exporter(base_url, tmp_path) as exporter:
        assert await exporter.sessions_after_poll() == 4
