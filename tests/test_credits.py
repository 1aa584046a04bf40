"""The credit ledger: first-call prices per 30 days, exact sums, the budget at its edge, JSON round trip,
and the scheduler publishing it and keeping it across a restart."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web

from exporter.config import parse_config
from exporter.credits import BUCKET_SECONDS, PERIOD_SECONDS, CreditLedger, Price
from exporter.demo.streamscharts import StreamsChartsSimulator
from exporter.families import AUDIENCE_FAMILIES
from exporter.metrics import AudienceStore, ExporterMetrics
from exporter.providers.base import UNITS_IN_FLIGHT
from exporter.providers.streamscharts import StreamsCharts, StreamsChartsSettings
from exporter.scheduler import Scheduler
from tests.conftest import fixture_json

STANDARD = Price(100, 20)
T0 = 1_700_000_000.0


def test_first_call_costs_the_first_price_and_later_calls_the_next_price() -> None:
    ledger = CreditLedger()
    costs = [ledger.reserve("stream:twitch:shroud:standard", STANDARD, T0 + i).cost for i in range(3)]
    assert costs == [100, 20, 20]


def test_each_key_has_its_own_first_call() -> None:
    ledger = CreditLedger()
    ledger.reserve("a", STANDARD, T0)
    assert ledger.reserve("b", STANDARD, T0).cost == 100


def test_day_31_costs_the_first_price_again() -> None:
    ledger = CreditLedger()
    ledger.reserve("a", STANDARD, T0)
    assert ledger.reserve("a", STANDARD, T0 + PERIOD_SECONDS - 1).cost == 20
    assert ledger.reserve("a", STANDARD, T0 + PERIOD_SECONDS).cost == 100
    assert ledger.reserve("a", STANDARD, T0 + PERIOD_SECONDS + 1).cost == 20


def test_a_budget_is_reached_exactly_and_the_next_call_is_refused() -> None:
    ledger = CreditLedger(budget=1.8)
    for i in range(5):
        assert ledger.reserve("a", STANDARD, T0 + i) is not None
    assert ledger.remaining(T0 + 5) == 0
    assert ledger.reserve("a", STANDARD, T0 + 5) is None
    assert ledger.spent(T0 + 5) == 180


def test_a_refused_call_books_nothing() -> None:
    ledger = CreditLedger(budget=0.5)
    assert ledger.reserve("a", STANDARD, T0) is None
    assert ledger.spent(T0) == 0
    assert ledger.price("a", STANDARD, T0) == 100


def test_spending_older_than_30_days_frees_the_budget() -> None:
    ledger = CreditLedger(budget=1)
    ledger.reserve("a", STANDARD, T0)
    assert ledger.reserve("b", STANDARD, T0 + 10) is None
    assert ledger.affordable_at(100, T0 + 10) == T0 + PERIOD_SECONDS
    assert ledger.reserve("b", STANDARD, T0 + PERIOD_SECONDS) is not None


def test_a_call_dearer_than_the_whole_budget_is_never_affordable() -> None:
    assert CreditLedger(budget=1.5).affordable_at(200, T0) is None


def test_refund_gives_back_the_cost_and_the_first_call() -> None:
    ledger = CreditLedger(budget=10)
    charge = ledger.reserve("a", STANDARD, T0)
    ledger.refund(charge)
    assert ledger.spent(T0) == 0
    assert ledger.reserve("a", STANDARD, T0 + 1).cost == 100


def test_export_and_restore_keep_first_calls_and_spending() -> None:
    ledger = CreditLedger(budget=2)
    ledger.reserve("a", STANDARD, T0)
    ledger.reserve("a", STANDARD, T0 + 1)
    restored = CreditLedger(budget=2)
    restored.restore(json.loads(json.dumps(ledger.export())))
    assert restored.price("a", STANDARD, T0 + 2) == 20
    assert restored.spent(T0 + 2) == 120
    assert restored.remaining(T0 + 2) == 0.8


def test_restore_drops_malformed_entries() -> None:
    ledger = CreditLedger()
    ledger.restore({"periods": {"a": "yesterday", "b": T0}, "charges": [["b", T0, 100], ["x"], "junk"]})
    assert ledger.period_start == {"b": T0}
    assert ledger.spent(T0) == 100


def test_a_refund_after_its_spending_aged_out_changes_nothing() -> None:
    ledger = CreditLedger(budget=2)
    charge = ledger.reserve("a", STANDARD, T0)
    ledger.reserve("b", STANDARD, T0 + PERIOD_SECONDS)
    ledger.refund(charge)
    assert ledger.spent(T0 + PERIOD_SECONDS) == 100


def test_a_call_refunded_twice_is_given_back_once() -> None:
    ledger = CreditLedger()
    ledger.reserve("a", STANDARD, T0)
    charge = ledger.reserve("a", STANDARD, T0 + 1)
    ledger.refund(charge)
    ledger.refund(charge)
    assert ledger.spent(T0 + 1) == 100


def test_calls_of_one_hour_count_until_the_latest_of_them_is_30_days_old() -> None:
    ledger = CreditLedger()
    start = BUCKET_SECONDS * 1_000_000
    ledger.reserve("a", STANDARD, start)
    ledger.reserve("a", STANDARD, start + 600)
    assert ledger.spent(start + PERIOD_SECONDS + 599) == 120
    assert ledger.spent(start + PERIOD_SECONDS + 600) == 0


def test_a_month_of_calls_every_minute_keeps_one_entry_per_hour_and_first_calls_of_30_days() -> None:
    ledger = CreditLedger()
    for minute in range(31 * 24 * 60):
        ledger.reserve(f"key-{minute // (24 * 60)}", STANDARD, T0 + 60 * minute)
    exported = ledger.export()
    assert len(exported["spent"]) <= PERIOD_SECONDS / BUCKET_SECONDS + 1
    assert set(exported["periods"]) == {f"key-{day}" for day in range(1, 31)}


def test_summed_spending_never_allows_more_than_the_budget_in_any_30_days() -> None:
    """Random calls, refunds and clock steps, checked against every call the vendor was really
    charged for: no 30-day window ever holds more than the budget."""
    rng = random.Random(7)
    ledger = CreditLedger(budget=50)
    charged: list[tuple[float, int]] = []
    now = T0
    for _ in range(6000):
        now += rng.choice([1, 60, 600, 3600, 6 * 3600, 86400 * 3]) * rng.random()
        charge = ledger.reserve(f"k{rng.randrange(8)}", Price(100, 20), now)
        if charge is None:
            continue
        if rng.random() < 0.2:
            ledger.refund(charge)
        else:
            charged.append((now, charge.cost))
            window = sum(cost for at, cost in charged if at > now - PERIOD_SECONDS)
            assert window <= 5000
            assert ledger.spent(now) >= window


def test_restore_reads_the_per_call_charges_older_versions_saved() -> None:
    ledger = CreditLedger(budget=2)
    ledger.restore({"periods": {"a": T0}, "charges": [["a", T0, 100], ["a", T0 + 60, 20]]})
    assert ledger.spent(T0 + 120) == 120
    assert ledger.price("a", STANDARD, T0 + 120) == 20


async def test_streams_charts_calls_at_most_units_in_flight_at_once(serve_app, fetcher) -> None:
    """Each call is held until UNITS_IN_FLIGHT calls are open at once: a poll that started more
    would show a higher peak."""
    open_calls, peak, all_open = 0, 0, asyncio.Event()
    body = fixture_json("streamscharts/standard.json")
    body["data"]["stream_end"] = None

    async def handle(request: web.Request) -> web.Response:
        nonlocal open_calls, peak
        open_calls += 1
        peak = max(peak, open_calls)
        if open_calls >= UNITS_IN_FLIGHT:
            all_open.set()
        await all_open.wait()
        open_calls -= 1
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/api/jazz/channels/{tail:.*}", handle)
    streams = [
        {"platform": "twitch", "channel": f"channel{i}", "stream_id": str(i)} for i in range(3 * UNITS_IN_FLIGHT)
    ]
    provider = streams_charts_over(await serve_app(app), streams)
    result = await provider.poll(fetcher, datetime.now(UTC))
    assert len(result.samples) == len(streams) and not result.failures
    assert peak == UNITS_IN_FLIGHT


def streams_charts_over(base_url: str, streams: list[dict[str, str]]) -> StreamsCharts:
    settings = {
        "name": "sc",
        "provider": "streamscharts",
        "client_id": "cid-0123456789",
        "token": "tok-abcdefghij",
        "streams": streams,
    }
    return StreamsCharts(StreamsChartsSettings.model_validate({**settings, "base_url": base_url}))


async def test_streams_charts_state_stops_growing_once_its_charges_are_30_days_old(serve_app, fetcher) -> None:
    """Three streams polled every 6 hours for 45 days."""
    body = fixture_json("streamscharts/standard.json")
    body["data"]["stream_end"] = None
    app = web.Application()

    async def handle(request: web.Request) -> web.Response:
        return web.json_response(body)

    app.router.add_get("/api/jazz/channels/{tail:.*}", handle)
    streams = [{"platform": "twitch", "channel": f"c{i}", "stream_id": str(i)} for i in range(3)]
    provider = streams_charts_over(await serve_app(app), streams)
    sizes = {}
    for poll in range(4 * 45):
        assert (await provider.poll(fetcher, datetime(2026, 1, 1, tzinfo=UTC) + poll * timedelta(hours=6))).ok
        sizes[poll / 4] = len(json.dumps(provider.export_state()))
    assert sizes[44.75] <= sizes[30.0] < sizes[29.0] + 100
    assert len(provider.export_state()["ledger"]["spent"]) == 4 * 30  # one entry per poll, not per call


def test_a_malformed_streams_charts_state_is_ignored_without_an_error() -> None:
    provider = streams_charts_over("http://127.0.0.1:9", [{"platform": "twitch", "channel": "c", "stream_id": "1"}])
    provider.restore_state({"ledger": "x", "last": [1], "finished": [[1], {}]})
    provider.restore_state({"ledger": {"spent": [[1, 2, 3]]}, "last": {"twitch/c/1/standard": "x"}, "finished": "ab"})
    assert (provider.last, provider.finished, provider.ledger.export()) == ({}, set(), {"periods": {}, "spent": []})


async def scheduler_over(base_url: str, state_dir: Path, stream: dict[str, str]) -> Scheduler:
    source = {
        "name": "sc",
        "provider": "streamscharts",
        "base_url": base_url,
        "client_id": "cid-0123456789",
        "token": "tok-abcdefghij",
        "streams": [stream],
        "credits_budget": 10,
    }
    config = parse_config({"global": {"state_dir": str(state_dir)}, "sources": [source]}, "<test>", state_dir)
    scheduler = Scheduler(config, AudienceStore(AUDIENCE_FAMILIES, 300.0), ExporterMetrics("test", "3"))
    await scheduler.open()
    return scheduler


def credit_metrics(scheduler: Scheduler) -> tuple[float | None, float | None]:
    registry = scheduler.metrics.registry
    labels = {"source": "sc", "provider": "streamscharts"}
    return (
        registry.get_sample_value("livestream_exporter_credits_spent_total", labels),
        registry.get_sample_value("livestream_exporter_credits_remaining", labels),
    )


async def test_scheduler_publishes_credits_and_a_restart_keeps_the_ledger(serve_app, tmp_path: Path) -> None:
    simulator = StreamsChartsSimulator(client_id="cid-0123456789", token="tok-abcdefghij")
    base_url = await serve_app(simulator.app())
    [live] = [s for s in simulator.streams.values() if s.end is None and s.platform == "twitch"]
    stream = {"platform": "twitch", "channel": live.channel, "stream_id": live.stream_id}
    scheduler = await scheduler_over(base_url, tmp_path, stream)
    assert credit_metrics(scheduler) == (0.0, None)
    assert await scheduler.poll("sc") and await scheduler.poll("sc")
    assert credit_metrics(scheduler) == (1.2, 8.8)
    await scheduler.close()
    restarted = await scheduler_over(base_url, tmp_path, stream)
    assert await restarted.poll("sc")
    assert credit_metrics(restarted) == (0.2, 8.6)
    assert simulator.spent == 1.4
    await restarted.close()
