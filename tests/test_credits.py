"""The credit ledger: first-call prices per 30 days, exact sums, the budget at its edge, JSON round trip,
and the scheduler publishing it and keeping it across a restart."""

from __future__ import annotations

import json
from pathlib import Path

from exporter.config import parse_config
from exporter.credits import PERIOD_SECONDS, CreditLedger, Price
from exporter.demo.streamscharts import StreamsChartsSimulator
from exporter.families import AUDIENCE_FAMILIES
from exporter.metrics import AudienceStore, ExporterMetrics
from exporter.scheduler import Scheduler

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
