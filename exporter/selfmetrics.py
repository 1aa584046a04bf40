"""The exporter's own metrics, declared once in `SELF_METRICS` (query-exporter's builtin_metrics
is the model): name, type, help and labels live in the table, and `ExporterMetrics` builds its
prometheus_client registry from it. A per-source metric is created at 0 when its source starts,
so `rate()` and alerts work before the first failure, and removed with it.

    >>> [m.name for m in SELF_METRICS if m.kind == "histogram"]
    ['livestream_exporter_request_duration_seconds']
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client import generate_latest as generate_text
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from exporter.tracked import Changes, TrackedCounter, TrackedGauge, TrackedHistogram

SOURCE = ("source", "provider")


@dataclass(frozen=True)
class SelfMetric:
    """One of the exporter's own metric families, as its exposition shows it (counters with
    their `_total`)."""

    name: str
    kind: Literal["gauge", "counter", "histogram"]
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()

    @property
    def per_source(self) -> bool:
        return self.labels[:2] == SOURCE


SOURCE_UP = SelfMetric(
    "livestream_exporter_source_up", "gauge", "1 if the source's last poll succeeded, else 0.", SOURCE
)
REQUESTS = SelfMetric(
    "livestream_exporter_requests_total",
    "counter",
    "Vendor API requests by endpoint and result code (HTTP status, timeout, connect_error, invalid_body, too_large).",
    (*SOURCE, "endpoint", "code"),
)
REQUEST_DURATION = SelfMetric(
    "livestream_exporter_request_duration_seconds",
    "histogram",
    "Duration of vendor API requests.",
    SOURCE,
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
LAST_SUCCESS = SelfMetric(
    "livestream_exporter_last_success_timestamp_seconds",
    "gauge",
    "Unix time of the source's last successful poll.",
    SOURCE,
)
NEWEST_SAMPLE = SelfMetric(
    "livestream_exporter_newest_sample_timestamp_seconds",
    "gauge",
    "Unix time of the newest vendor data point published (freshness).",
    SOURCE,
)
POLL_INTERVAL = SelfMetric(
    "livestream_exporter_poll_interval_seconds", "gauge", "Seconds between polls of the source.", SOURCE
)
RATE_LIMITED = SelfMetric(
    "livestream_exporter_rate_limited_total", "counter", "429 answers and self-imposed waits for a rate budget.", SOURCE
)
SOURCE_RATE_LIMITED = SelfMetric(
    "livestream_exporter_source_rate_limited",
    "gauge",
    "1 while the source waits for a vendor's Retry-After or its own rate budget, else 0.",
    SOURCE,
)
POLLS_SKIPPED = SelfMetric(
    "livestream_exporter_polls_skipped_total",
    "counter",
    "Polls not started because the previous one was still running.",
    SOURCE,
)
CREDITS_SPENT = SelfMetric(
    "livestream_exporter_credits_spent_total", "counter", "Vendor credits spent (Streams Charts).", SOURCE
)
CREDITS_REMAINING = SelfMetric(
    "livestream_exporter_credits_remaining", "gauge", "Credits left of credits_budget in the 30-day window.", SOURCE
)
REJECTED_POINTS = SelfMetric(
    "livestream_exporter_rejected_points_total",
    "counter",
    "Vendor data points that could not be parsed and were skipped.",
    SOURCE,
)
CONFIG_RELOAD_OK = SelfMetric(
    "livestream_exporter_config_last_reload_successful", "gauge", "1 if the last config (re)load succeeded."
)
SHARD_ORDINAL = SelfMetric(
    "livestream_exporter_shard_ordinal",
    "gauge",
    "This replica's shard index (0-based) of livestream_exporter_total_shards.",
)
TOTAL_SHARDS = SelfMetric(
    "livestream_exporter_total_shards",
    "gauge",
    "Number of replicas the sources' streams are split across (1: not sharded).",
)
OWNED_UNITS = SelfMetric(
    "livestream_exporter_owned_units",
    "gauge",
    "Units (independent vendor requests, usually one stream each) of the source this replica polls.",
    SOURCE,
)
BUILD_INFO = SelfMetric(
    "livestream_exporter_build_info",
    "gauge",
    "Build information; the value is always 1.",
    ("version", "python_version"),
)

SELF_METRICS: tuple[SelfMetric, ...] = (
    SOURCE_UP,
    REQUESTS,
    REQUEST_DURATION,
    LAST_SUCCESS,
    NEWEST_SAMPLE,
    POLL_INTERVAL,
    RATE_LIMITED,
    SOURCE_RATE_LIMITED,
    POLLS_SKIPPED,
    CREDITS_SPENT,
    CREDITS_REMAINING,
    REJECTED_POINTS,
    CONFIG_RELOAD_OK,
    SHARD_ORDINAL,
    TOTAL_SHARDS,
    OWNED_UNITS,
    BUILD_INFO,
)
HISTORY_SAMPLES = SelfMetric(
    "livestream_exporter_history_samples_total",
    "counter",
    "Missed samples sent to the remote-write receiver, by outcome (sent, rejected: refused "
    "for good, failed: still refused after retries).",
    (*SOURCE, "outcome"),
)
HISTORY_PENDING = SelfMetric(
    "livestream_exporter_history_pending_seconds",
    "gauge",
    "Age of the oldest missed point not yet filled (above 0 while a source is failing); 0 when none.",
    SOURCE,
)
HISTORY_METRICS: tuple[SelfMetric, ...] = (HISTORY_SAMPLES, HISTORY_PENDING)
"""Served only while `global.history` is set (the gap filler registers them)."""
CREATED_AT_ZERO = (SOURCE_UP, REQUEST_DURATION, POLL_INTERVAL, RATE_LIMITED, POLLS_SKIPPED, REJECTED_POINTS)
"""Per-source families that exist from the source's start (the others appear with a first value)."""


def build(metric: SelfMetric, registry: CollectorRegistry) -> MetricWrapperBase:
    """The prometheus_client family of a table entry, registered in `registry`; it counts its
    changes (exporter.tracked), so a registry built only by `build` can reuse its rendering."""
    name = metric.name.removesuffix("_total") if metric.kind == "counter" else metric.name
    if metric.kind == "histogram":
        return TrackedHistogram(name, metric.help, metric.labels, buckets=metric.buckets, registry=registry)
    kind = TrackedCounter if metric.kind == "counter" else TrackedGauge
    return kind(name, metric.help, metric.labels, registry=registry)


class ExporterMetrics:
    """The registry built from `SELF_METRICS`, with typed handles on each family, and its last
    rendering in each format, reused while nothing in it changed."""

    def __init__(self, version: str, python_version: str) -> None:
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=True)
        self._rate_limited: dict[tuple[str, str], Callable[[], bool]] = {}
        """Per source, what its `source_rate_limited` gauge reads at each scrape."""
        self._rendered: dict[bool, tuple[tuple[int, tuple[bool, ...]], bytes]] = {}
        """OpenMetrics or not -> (what the metrics were when the rendering began, the rendering)."""
        self.families: dict[str, MetricWrapperBase] = {
            metric.name: build(metric, self.registry) for metric in SELF_METRICS
        }
        self.source_up = self.gauge(SOURCE_UP)
        self.requests = self.counter(REQUESTS)
        self.request_duration = self.histogram(REQUEST_DURATION)
        self.last_success = self.gauge(LAST_SUCCESS)
        self.newest_sample = self.gauge(NEWEST_SAMPLE)
        self.poll_interval = self.gauge(POLL_INTERVAL)
        self.rate_limited = self.counter(RATE_LIMITED)
        self.source_rate_limited = self.gauge(SOURCE_RATE_LIMITED)
        self.polls_skipped = self.counter(POLLS_SKIPPED)
        self.credits_spent = self.counter(CREDITS_SPENT)
        self.credits_remaining = self.gauge(CREDITS_REMAINING)
        self.rejected_points = self.counter(REJECTED_POINTS)
        self.config_reload_ok = self.gauge(CONFIG_RELOAD_OK)
        self.shard_ordinal = self.gauge(SHARD_ORDINAL)
        self.total_shards = self.gauge(TOTAL_SHARDS)
        self.owned_units = self.gauge(OWNED_UNITS)
        self.build_info = self.gauge(BUILD_INFO)
        self.total_shards.set(1)
        self.config_reload_ok.set(1)
        self.build_info.labels(version, python_version).set(1)

    def gauge(self, metric: SelfMetric) -> Gauge:
        family = self.families[metric.name]
        assert isinstance(family, Gauge)
        return family

    def counter(self, metric: SelfMetric) -> Counter:
        family = self.families[metric.name]
        assert isinstance(family, Counter)
        return family

    def histogram(self, metric: SelfMetric) -> Histogram:
        family = self.families[metric.name]
        assert isinstance(family, Histogram)
        return family

    def add_source(
        self, source: str, provider: str, interval: float, rate_limited: Callable[[], bool] = lambda: False
    ) -> None:
        for metric in CREATED_AT_ZERO:
            self.families[metric.name].labels(source, provider)
        self.poll_interval.labels(source, provider).set(interval)
        self.source_rate_limited.labels(source, provider).set_function(lambda: 1 if rate_limited() else 0)
        self._rate_limited[(source, provider)] = rate_limited

    def remove_source(self, source: str, provider: str) -> None:
        """Every per-source series of the source, whatever its other labels."""
        self._rate_limited.pop((source, provider), None)
        for metric in SELF_METRICS:
            if not metric.per_source:
                continue
            family = self.families[metric.name]
            for labels in list(family._metrics):
                if labels[:2] == (source, provider):
                    with contextlib.suppress(KeyError):
                        family.remove(*labels)

    def _now(self) -> tuple[int, tuple[bool, ...]]:
        """What decides the rendering: the count of changes, and the gauges that read a function
        at each scrape (a source's rate limit ends with time, not with a call)."""
        return Changes.count, tuple(rate_limited() for rate_limited in self._rate_limited.values())

    def current(self, openmetrics: bool) -> bytes | None:
        """The last rendering, if nothing changed since it began."""
        return self._rendered_at(openmetrics, self._now())

    def _rendered_at(self, openmetrics: bool, now: tuple[int, tuple[bool, ...]]) -> bytes | None:
        rendered = self._rendered.get(openmetrics)
        return rendered[1] if rendered is not None and rendered[0] == now else None

    def render(self, openmetrics: bool) -> bytes:
        """The own metrics as exposition text, without OpenMetrics' `# EOF` (a worker thread may
        call it: what it stamps the rendering with is read before the registry is)."""
        now = self._now()
        current = self._rendered_at(openmetrics, now)
        if current is not None:
            return current
        if openmetrics:
            text = generate_openmetrics(self.registry).removesuffix(b"# EOF\n")
        else:
            text = generate_text(self.registry)
        self._rendered[openmetrics] = (now, text)
        return text
