"""The own metrics' rendering is reused while nothing in them changed, and never once something
did: a value, a series added or removed, a rate limit that ended with time, or a change made
while a worker thread was rendering."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import exporter.selfmetrics as selfmetrics
from exporter.families import AUDIENCE_FAMILIES
from exporter.history.filler import HistoryMetrics
from exporter.metrics import AudienceStore, Exposition
from exporter.selfmetrics import HISTORY_METRICS, SELF_METRICS, ExporterMetrics, build
from exporter.status import SourceStatus
from tests.fakeclock import FakeClock


def served(metrics: ExporterMetrics, openmetrics: bool = False) -> str:
    return metrics.render(openmetrics).decode()


@pytest.mark.parametrize("openmetrics", [False, True])
def test_rendering_is_reused_while_nothing_changed(openmetrics: bool) -> None:
    metrics = ExporterMetrics("t", "3")
    metrics.add_source("s", "gcore", 60)
    first = metrics.render(openmetrics)
    assert metrics.current(openmetrics) is first
    assert metrics.render(openmetrics) is first


def test_a_new_value_shows_in_the_next_rendering() -> None:
    metrics = ExporterMetrics("t", "3")
    metrics.add_source("s", "gcore", 60)
    metrics.render(False)
    metrics.requests.labels("s", "gcore", "viewers", "200").inc()
    assert metrics.current(False) is None
    assert 'code="200",endpoint="viewers",provider="gcore",source="s"} 1.0' in served(metrics)


def test_a_series_made_without_a_value_shows_in_the_next_rendering() -> None:
    metrics = ExporterMetrics("t", "3")
    metrics.render(False)
    metrics.add_source("new", "gcore", 60)
    assert 'livestream_exporter_source_up{provider="gcore",source="new"} 0.0' in served(metrics)


def test_a_removed_source_leaves_the_next_rendering() -> None:
    metrics = ExporterMetrics("t", "3")
    metrics.add_source("gone", "gcore", 60)
    assert 'source="gone"' in served(metrics)
    metrics.remove_source("gone", "gcore")
    assert 'source="gone"' not in served(metrics)


def test_a_rate_limit_that_ends_with_time_shows_without_any_call() -> None:
    clock = FakeClock()
    status = SourceStatus("s", "gcore", 60, clock=clock)
    metrics = ExporterMetrics("t", "3")
    metrics.add_source("s", "gcore", 60, status.is_rate_limited)
    status.waiting(30)
    assert 'livestream_exporter_source_rate_limited{provider="gcore",source="s"} 1.0' in served(metrics)
    clock.now += 31
    assert 'livestream_exporter_source_rate_limited{provider="gcore",source="s"} 0.0' in served(metrics)


def test_a_change_made_while_a_thread_renders_is_not_hidden_by_that_rendering(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    metrics = ExporterMetrics("t", "3")
    metrics.add_source("s", "gcore", 60)
    real = selfmetrics.generate_text

    def rendered_then_changed(registry: CollectorRegistry) -> bytes:
        text = real(registry)
        metrics.polls_skipped.labels("s", "gcore").inc(7)
        return text

    monkeypatch.setattr(selfmetrics, "generate_text", rendered_then_changed)
    assert 'livestream_exporter_polls_skipped_total{provider="gcore",source="s"} 0.0' in served(metrics)
    monkeypatch.setattr(selfmetrics, "generate_text", real)
    assert metrics.current(False) is None
    assert 'livestream_exporter_polls_skipped_total{provider="gcore",source="s"} 7.0' in served(metrics)


@pytest.mark.parametrize("metric", [*SELF_METRICS, *HISTORY_METRICS], ids=lambda metric: metric.name)
def test_every_own_family_reports_its_changes(metric: selfmetrics.SelfMetric) -> None:
    metrics = ExporterMetrics("t", "3")
    family = build(metric, metrics.registry) if metric in HISTORY_METRICS else metrics.families[metric.name]
    child = family.labels(*(f"v{i}" for i in range(len(metric.labels)))) if metric.labels else family
    metrics.render(False)
    if metric.kind == "histogram":
        child.observe(0.3)  # type: ignore[attr-defined]
    elif metric.kind == "counter":
        child.inc()  # type: ignore[attr-defined]
    else:
        child.set(5)  # type: ignore[attr-defined]
    assert metrics.current(False) is None


def test_the_gap_fillers_families_in_the_own_registry_report_their_changes() -> None:
    metrics = ExporterMetrics("t", "3")
    history = HistoryMetrics(metrics.registry)
    metrics.render(False)
    history.pending.labels("s", "gcore").set(120)
    assert 'livestream_exporter_history_pending_seconds{provider="gcore",source="s"} 120.0' in served(metrics)


async def test_a_scrape_between_polls_reuses_the_tail_without_a_worker_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exposition = Exposition(AudienceStore(AUDIENCE_FAMILIES, stale_after=300), ExporterMetrics("t", "3"))
    first = await exposition.scraped_tail(False)
    threads: list[object] = []

    async def no_thread(*args: object) -> object:
        threads.append(args)
        raise AssertionError("rendered again although nothing changed")

    monkeypatch.setattr(asyncio, "to_thread", no_thread)
    assert await exposition.scraped_tail(False) is first
    assert threads == []


@pytest.mark.parametrize(
    "change",
    [
        lambda gauge, counter: gauge.labels("s", "gcore").dec(2),
        lambda gauge, counter: gauge.labels("s", "gcore").inc(2),
        lambda gauge, counter: gauge.labels("s", "gcore").set_function(lambda: 9),
        lambda gauge, counter: counter.labels("s", "gcore").reset(),
        lambda gauge, counter: gauge.remove_by_labels({"source": "s"}),
        lambda gauge, counter: gauge.clear(),
    ],
    ids=["dec", "inc", "set_function", "reset", "remove_by_labels", "clear"],
)
def test_every_way_of_changing_a_family_ends_the_reuse(change: Any) -> None:
    metrics = ExporterMetrics("t", "3")
    gauge, counter = metrics.owned_units, metrics.polls_skipped
    gauge.labels("s", "gcore").set(1)
    counter.labels("s", "gcore").inc()
    metrics.render(False)
    change(gauge, counter)
    assert metrics.current(False) is None
