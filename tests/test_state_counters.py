"""Counters and the state file: a total no counter can hold is never served (from a vendor or a
state file), day parts past every vendor's window fold into one part, a unit that leaves takes its
counters with it, the snapshot handed to the writer never changes, a poll that changes nothing
writes nothing, and a corrupt state file never stops the real exporter process."""

from __future__ import annotations

import json
import logging
import os
import signal
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

from exporter import state as state_module
from exporter.demo.cloudflare import CloudflareSimulator
from exporter.families import AUDIENCE_FAMILIES
from exporter.metrics import FOLD_AFTER_DAYS, FOLDED_PART, AudienceStore, SourceIdentity
from exporter.poll import ALL_UNITS, PollError, PollResult, Sample
from tests.audience import apply, audience_body, counter_state
from tests.test_counters import Exporter, Vendor

SESSIONS = "livestream_sessions_total"
SOURCE = SourceIdentity("cf", "cloudflare")
NOW = datetime(2024, 8, 1, 12, tzinfo=UTC).timestamp()


def store_with(counter_state: dict[str, Any] | None = None) -> AudienceStore:
    store = AudienceStore(AUDIENCE_FAMILIES, stale_after=1e9)
    store.add_source(SOURCE, counter_state)
    return store


def poll(store: AudienceStore, now: float = NOW, failures: dict[str, PollError] | None = None, **units: Any) -> None:
    """Apply one poll: `unit=[(value, part), ...]` gives each unit's session totals."""
    samples = {unit: [Sample.of(SESSIONS, value, part) for value, part in totals] for unit, totals in units.items()}
    apply(store, "cf", PollResult(samples=samples, failures=failures or {}), now)


def served(store: AudienceStore) -> dict[tuple[tuple[str, str], ...], float]:
    """Session counters as Prometheus's OpenMetrics parser reads the scrape (it rejects the whole
    scrape over a NaN, negative or infinite counter)."""
    body = (audience_body(store, True) + b"# EOF\n").decode()
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in parse_openmetrics(body)
        for sample in family.samples
        if sample.name == SESSIONS
    }


def sessions(store: AudienceStore) -> float | None:
    return served(store).get((("provider", "cloudflare"), ("source", "cf")))


def day(offset: int) -> str:
    return (date(2024, 8, 1) + timedelta(days=offset)).isoformat()


@pytest.mark.parametrize("bad", [float("nan"), -1.0, float("inf")], ids=["NaN", "negative", "infinite"])
def test_a_vendor_total_no_counter_can_hold_is_ignored(bad: float) -> None:
    store = store_with()
    poll(store, daywise=[(5, day(0))])
    poll(store, daywise=[(bad, day(0)), (bad, day(1))])
    assert sessions(store) == 5


def test_a_total_that_would_take_the_sum_to_infinity_is_ignored() -> None:
    store = store_with()
    poll(store, daywise=[(1e308, day(0))])
    poll(store, daywise=[(1e308, day(0)), (1e308, day(1))])
    assert sessions(store) == 1e308


def test_state_file_counters_no_counter_can_hold_are_left_out_with_one_line(caplog) -> None:
    def entry(parts: Any, **labels: str) -> dict[str, Any]:
        return {"name": SESSIONS, "labels": [list(pair) for pair in labels.items()], "parts": parts, "unit": "daywise"}

    saved = {
        "counters": [
            entry({"d": 3.0}, app="good"),
            entry({"d": float("nan")}, app="nan"),
            entry({"d": -1e9}, app="negative"),
            entry({"d": float("inf")}, app="infinite"),
            entry({"d": 1e308, "e": 1e308}, app="overflowing"),
            entry({"d": "x"}, app="string"),
            {"name": SESSIONS, "labels": []},
            "junk",
        ]
    }
    with caplog.at_level(logging.WARNING, logger="exporter.metrics"):
        store = store_with(saved)
    assert len(caplog.records) == 1
    for app in ("good", "nan", "negative", "infinite", "overflowing", "string"):
        poll(store, daywise=[])
        apply(store, "cf", PollResult(samples={"daywise": [Sample.of(SESSIONS, 0, "d", app=app)]}), NOW)
        assert list(served(store).values()) == ([3.0] if app == "good" else [0.0])


def test_day_parts_past_every_vendors_window_fold_into_one_part_and_the_total_stays() -> None:
    """Cloudflare-like polls, one per day for 60 days, each answering yesterday and today."""
    store = store_with()
    for offset in range(60):
        poll(store, now=NOW + offset * 86400, daywise=[(offset + 1, day(offset - 1)), (offset + 2, day(offset))])
        assert sessions(store) == 1 + sum(n + 2 for n in range(offset + 1))
    [entry] = counter_state(store, "cf")["counters"]
    days_that_can_change = FOLD_AFTER_DAYS + 1
    assert len(entry["parts"]) == days_that_can_change + 1 + 1  # the day added since the last fold, folded
    assert FOLDED_PART in entry["parts"]


def test_a_folded_day_reported_again_is_not_counted_twice_even_after_a_restart() -> None:
    store = store_with()
    poll(store, daywise=[(7, day(0))])
    poll(store, now=NOW + 40 * 86400, daywise=[(1, day(40))])
    assert sessions(store) == 8
    poll(store, now=NOW + 40 * 86400, daywise=[(9, day(0)), (1, day(40))])
    assert sessions(store) == 8
    restarted = store_with(json.loads(json.dumps(counter_state(store, "cf"))))
    poll(restarted, now=NOW + 40 * 86400, daywise=[(9, day(0)), (1, day(40))])
    assert sessions(restarted) == 8


def test_days_within_the_window_are_kept_whatever_the_local_clock_says() -> None:
    store = store_with()
    poll(store, now=NOW + 400 * 86400, daywise=[(7, day(0)), (2, day(1))])
    poll(store, now=NOW + 400 * 86400, daywise=[(8, day(0)), (2, day(1))])
    assert sessions(store) == 10


def test_a_unit_the_poll_no_longer_covers_takes_its_counters_with_it() -> None:
    store = store_with()
    apply(
        store,
        "cf",
        PollResult(
            samples={
                "a": [Sample.of(SESSIONS, 1, "", unit="a")],
                "b": [Sample.of(SESSIONS, 2, "", unit="b")],
            }
        ),
        NOW,
    )
    apply(store, "cf", PollResult(samples={"a": [Sample.of(SESSIONS, 1, "", unit="a")]}), NOW)
    assert [entry["unit"] for entry in counter_state(store, "cf")["counters"]] == ["a"]


def test_a_failed_unit_and_a_failed_poll_keep_their_counters() -> None:
    store = store_with()
    poll(store, a=[(1, "")], b=[(2, "")])
    poll(store, failures={"b": PollError("HTTP 500")}, a=[(1, "")])
    poll(store, failures={ALL_UNITS: PollError("internal error")})
    assert len(counter_state(store, "cf")["counters"]) == 1
    assert sessions(store) == 2


def test_counters_saved_without_their_unit_go_after_a_full_poll_that_did_not_report_them() -> None:
    def entry(app: str) -> dict[str, Any]:
        return {"name": SESSIONS, "labels": [["app", app]], "parts": {"": 4.0}}

    store = store_with({"counters": [entry("kept"), entry("gone")]})
    poll(store, failures={"other": PollError("HTTP 500")})
    assert len(counter_state(store, "cf")["counters"]) == 2
    apply(store, "cf", PollResult(samples={"u": [Sample.of(SESSIONS, 1, "", app="kept")]}), NOW)
    assert [(e["labels"], e["unit"]) for e in counter_state(store, "cf")["counters"]] == [((("app", "kept"),), "u")]


def test_the_counter_state_handed_to_the_writer_never_changes_afterwards() -> None:
    store = store_with()
    poll(store, daywise=[(1, day(0))])
    snapshot = counter_state(store, "cf")
    frozen = json.dumps(snapshot)
    poll(store, daywise=[(5, day(0)), (2, day(1))])
    poll(store, now=NOW + 50 * 86400, daywise=[(1, day(50))])
    assert json.dumps(snapshot) == frozen


async def test_a_poll_that_changes_nothing_writes_no_state(serve_app, tmp_path: Path, monkeypatch) -> None:
    writes: list[str] = []
    real = os.replace
    monkeypatch.setattr(state_module.os, "replace", lambda src, dst: (writes.append(str(dst)), real(src, dst)))
    vendor = Vendor()
    vendor.answer(d2=3, d3=1)
    async with Exporter(await serve_app(vendor.app()), tmp_path) as exporter:
        await exporter.sessions_after_poll()
        exporter.scheduler.persistence.flush()
        await exporter.sessions_after_poll()
        exporter.scheduler.persistence.flush()
        assert writes == [str(tmp_path / "cf.json")]
        vendor.answer(d2=3, d3=2)
        await exporter.sessions_after_poll()
        exporter.scheduler.persistence.flush()
        assert len(writes) == 2


def test_the_exporter_starts_with_a_corrupt_state_file_and_moves_it_aside(
    run_exporter: Any, simulator_thread: Any, tmp_path: Path
) -> None:
    simulator = CloudflareSimulator()
    sim = simulator_thread(simulator)
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "cf.json").write_text('{"counters": "abc"}')
    (state_dir / ".cf.json.a1b2c3d4.tmp").write_text('{"coun')
    config = tmp_path / "config.yaml"
    config.write_text(
        f"global: {{state_dir: {str(state_dir)!r}}}\nsources:\n"
        f"  - {{name: cf, provider: cloudflare, base_url: {sim.base_url!r}, api_token: {simulator.api_token!r},"
        f" account_id: {simulator.account_id!r}, app_id: {simulator.app_id!r}, interval: 1s}}\n"
    )
    exporter = run_exporter("--config", str(config))
    exporter.wait_until(lambda: 'livestream_sessions_total{source="cf"' in exporter.metrics())
    assert (state_dir / "cf.json.corrupt").read_text() == '{"counters": "abc"}'
    assert not (state_dir / ".cf.json.a1b2c3d4.tmp").exists()
    exporter.proc.send_signal(signal.SIGTERM)
    assert exporter.proc.wait(timeout=10) == 0
    log = exporter.log()
    assert log.count("state file unusable, moved aside") == 1 and "Traceback" not in log
    assert json.loads((state_dir / "cf.json").read_text())["counters"]
    assert sorted(p.name for p in state_dir.iterdir()) == ["cf.json", "cf.json.corrupt"]
