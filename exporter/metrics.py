"""The only place that knows metric names, HELP, exposition formats, staleness and counter rules.

Audience series are rendered to bytes once per poll, per (family, source), and a scrape only
joins those pieces under one HELP/TYPE header per family, so a scrape costs a join, not a walk
over every series in Python (see the README's performance notes). The exporter's own metrics
are few and live in a prometheus_client registry.

Counters built from vendor running totals follow one rule: per series, the highest value seen
for each part (a day, a stream) is kept and the counter is their sum, so it never decreases when
a vendor revises a part downwards or a part leaves the query window; the parts are saved in the
state file so a restart continues where it stopped.
"""

from __future__ import annotations

import contextlib
import struct
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client import generate_latest as generate_text
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.utils import floatToGoString

from exporter.providers.base import ALL_UNITS, Labels, MetricFamily, PollResult, Sample

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

CONTRACT_FAMILIES: tuple[MetricFamily, ...] = (
    MetricFamily(
        "livestream_concurrent_viewers",
        "gauge",
        "Concurrent viewers at the newest vendor point (LLS: the peak within that interval; "
        "NAVER: player-measured current viewers).",
    ),
    MetricFamily(
        "livestream_unique_viewers",
        "gauge",
        "Unique viewers in the newest closed bucket of the given granularity (Gcore, via CDN).",
    ),
    MetricFamily(
        "livestream_viewer_seconds_total", "counter", "Seconds watched by viewers, summed over vendor totals."
    ),
    MetricFamily("livestream_ingest_seconds_total", "counter", "Seconds of ingest (input streamed)."),
    MetricFamily("livestream_sessions_total", "counter", "Livestream sessions."),
    MetricFamily("livestream_peak_viewers", "gauge", "Peak concurrent viewers of a stream."),
    MetricFamily("livestream_average_viewers", "gauge", "Average concurrent viewers of a stream."),
    MetricFamily("livestream_airtime_seconds", "gauge", "Seconds a stream has been on air."),
    MetricFamily("livestream_followers_gained_total", "counter", "Followers gained during a stream."),
    MetricFamily("livestream_stream_info", "gauge", "Descriptive text of a stream; the value is always 1."),
)


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render_labels(labels: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{name}="{escape_label_value(value)}"' for name, value in labels)
    return "{" + inner + "}" if inner else ""


def family_header(family: MetricFamily, openmetrics: bool) -> bytes:
    help_text = family.help.replace("\\", "\\\\").replace("\n", "\\n")
    name = family.name
    if openmetrics:
        help_text = help_text.replace('"', '\\"')
        if family.kind == "counter":
            name = name.removesuffix("_total")
    return f"# HELP {name} {help_text}\n# TYPE {name} {family.kind}\n".encode()


@dataclass(frozen=True, slots=True)
class SourceIdentity:
    """The labels every series of a source carries."""

    name: str
    provider: str
    labels: Labels = ()

    def series_labels(self, sample_labels: Labels) -> Labels:
        own = {name for name, _ in sample_labels}
        constant = tuple((k, v) for k, v in self.labels if k not in own and k not in ("source", "provider"))
        return (("source", self.name), ("provider", self.provider), *sample_labels, *constant)


@dataclass
class _Unit:
    samples: list[Sample]
    updated: float


SeriesKey = tuple[str, Labels]


@dataclass
class _SourceState:
    identity: SourceIdentity
    units: dict[str, _Unit] = field(default_factory=dict)
    counter_parts: dict[SeriesKey, dict[str, float]] = field(default_factory=dict)
    chunks: dict[str, bytes] = field(default_factory=dict)


def _counter_key_to_json(key: SeriesKey) -> str:
    name, labels = key
    return name + render_labels(labels)


class AudienceStore:
    """Per-source audience series: last good values per unit, staleness, counters, rendering."""

    def __init__(self, families: Iterable[MetricFamily], stale_after: float) -> None:
        self.families: dict[str, MetricFamily] = {}
        for family in families:
            self.families.setdefault(family.name, family)
        self.stale_after = stale_after
        self._sources: dict[str, _SourceState] = {}
        self.version = 0
        self._body_cache: dict[bool, tuple[int, bytes]] = {}

    def add_source(self, identity: SourceIdentity, counter_state: dict[str, Any] | None = None) -> None:
        state = _SourceState(identity)
        if counter_state:
            for entry in counter_state.get("counters", []):
                key = (entry["name"], tuple((k, v) for k, v in entry["labels"]))
                state.counter_parts[key] = {str(p): float(v) for p, v in entry["parts"].items()}
        self._sources[identity.name] = state

    def remove_source(self, name: str) -> None:
        if self._sources.pop(name, None) is not None:
            self.version += 1

    def source_names(self) -> list[str]:
        return list(self._sources)

    def apply(self, source: str, result: PollResult, now: float) -> None:
        """Replace the units that answered, keep failed ones until stale, drop the rest."""
        state = self._sources[source]
        if ALL_UNITS in result.failures:
            kept = dict(state.units)
        else:
            kept = {key: state.units[key] for key in result.failures if key in state.units}
        for key, samples in result.samples.items():
            kept[key] = _Unit(samples, now)
            for sample in samples:
                family = self.families.get(sample.name)
                if family is not None and family.kind == "counter":
                    parts = state.counter_parts.setdefault((sample.name, sample.labels), {})
                    parts[sample.part] = max(parts.get(sample.part, sample.value), sample.value)
        state.units = kept
        self._render(state, now)

    def expire(self, now: float) -> None:
        for state in self._sources.values():
            if any(now - unit.updated > self.stale_after for unit in state.units.values()):
                self._render(state, now)

    def counter_state(self, source: str) -> dict[str, Any]:
        """What must survive a restart for this source's counters, as JSON-able data."""
        state = self._sources[source]
        return {
            "counters": [
                {"name": name, "labels": [list(pair) for pair in labels], "parts": parts}
                for (name, labels), parts in state.counter_parts.items()
            ]
        }

    def counter_value(self, source: str, name: str, labels: Labels) -> float:
        return sum(self._sources[source].counter_parts.get((name, labels), {}).values())

    def _render(self, state: _SourceState, now: float) -> None:
        state.units = {k: u for k, u in state.units.items() if now - u.updated <= self.stale_after}
        lines: dict[str, list[str]] = {}
        seen: set[SeriesKey] = set()
        for unit in state.units.values():
            for sample in unit.samples:
                family = self.families.get(sample.name)
                if family is None:
                    continue
                key = (sample.name, sample.labels)
                if key in seen:
                    continue
                seen.add(key)
                value = sample.value
                if family.kind == "counter":
                    value = sum(state.counter_parts.get(key, {sample.part: value}).values())
                labels = render_labels(state.identity.series_labels(sample.labels))
                lines.setdefault(sample.name, []).append(f"{sample.name}{labels} {floatToGoString(value)}\n")
        state.chunks = {name: "".join(text).encode() for name, text in lines.items()}
        self.version += 1

    def render(self, openmetrics: bool) -> bytes:
        """Every family with at least one series, each under one HELP/TYPE header."""
        cached = self._body_cache.get(openmetrics)
        if cached is not None and cached[0] == self.version:
            return cached[1]
        pieces: list[bytes] = []
        for name, family in self.families.items():
            chunks = [s.chunks[name] for s in self._sources.values() if name in s.chunks]
            if chunks:
                pieces.append(family_header(family, openmetrics))
                pieces.extend(chunks)
        body = b"".join(pieces)
        self._body_cache[openmetrics] = (self.version, body)
        return body


class ExporterMetrics:
    """The exporter's own metrics, created at 0 so rates and alerts work before any failure."""

    def __init__(self, version: str, python_version: str) -> None:
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=True)
        src = ["source", "provider"]
        self.source_up = Gauge(
            "livestream_exporter_source_up",
            "1 if the source's last poll succeeded, else 0.",
            src,
            registry=self.registry,
        )
        self.requests = Counter(
            "livestream_exporter_requests",
            "Vendor API requests by endpoint and result code (HTTP status, timeout, connect_error, "
            "invalid_body).",
            [*src, "endpoint", "code"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "livestream_exporter_request_duration_seconds",
            "Duration of vendor API requests.",
            src,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.last_success = Gauge(
            "livestream_exporter_last_success_timestamp_seconds",
            "Unix time of the source's last successful poll.",
            src,
            registry=self.registry,
        )
        self.newest_sample = Gauge(
            "livestream_exporter_newest_sample_timestamp_seconds",
            "Unix time of the newest vendor data point published (freshness).",
            src,
            registry=self.registry,
        )
        self.poll_interval = Gauge(
            "livestream_exporter_poll_interval_seconds",
            "Seconds between polls of the source.",
            src,
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "livestream_exporter_rate_limited",
            "429 answers and self-imposed waits for a rate budget.",
            src,
            registry=self.registry,
        )
        self.credits_spent = Counter(
            "livestream_exporter_credits_spent",
            "Vendor credits spent (Streams Charts).",
            src,
            registry=self.registry,
        )
        self.credits_remaining = Gauge(
            "livestream_exporter_credits_remaining",
            "Credits left of credits_budget in the 30-day window.",
            src,
            registry=self.registry,
        )
        self.rejected_points = Counter(
            "livestream_exporter_rejected_points",
            "Vendor data points that could not be parsed and were skipped.",
            src,
            registry=self.registry,
        )
        self.config_reload_ok = Gauge(
            "livestream_exporter_config_last_reload_successful",
            "1 if the last config (re)load succeeded.",
            registry=self.registry,
        )
        self.shard_ordinal = Gauge(
            "livestream_exporter_shard_ordinal",
            "This replica's shard index (0-based) of livestream_exporter_total_shards.",
            registry=self.registry,
        )
        self.total_shards = Gauge(
            "livestream_exporter_total_shards",
            "Number of replicas the sources' streams are split across (1: not sharded).",
            registry=self.registry,
        )
        self.owned_units = Gauge(
            "livestream_exporter_owned_units",
            "Units (independent vendor requests, usually one stream each) of the source this replica polls.",
            src,
            registry=self.registry,
        )
        self.total_shards.set(1)
        self.build_info = Gauge(
            "livestream_exporter_build_info",
            "Build information; the value is always 1.",
            ["version", "python_version"],
            registry=self.registry,
        )
        self.build_info.labels(version, python_version).set(1)
        self.config_reload_ok.set(1)

    def add_source(self, source: str, provider: str, interval: float) -> None:
        self.source_up.labels(source, provider).set(0)
        self.poll_interval.labels(source, provider).set(interval)
        for counter in (self.rate_limited, self.rejected_points):
            counter.labels(source, provider)
        self.request_duration.labels(source, provider)

    def remove_source(self, source: str, provider: str) -> None:
        for metric in (
            self.source_up,
            self.request_duration,
            self.last_success,
            self.newest_sample,
            self.poll_interval,
            self.rate_limited,
            self.credits_spent,
            self.credits_remaining,
            self.rejected_points,
            self.owned_units,
        ):
            with contextlib.suppress(KeyError):
                metric.remove(source, provider)
        for labels in list(self.requests._metrics):
            if labels[:2] == (source, provider):
                self.requests.remove(*labels)

    def render(self, openmetrics: bool) -> bytes:
        if openmetrics:
            return generate_openmetrics(self.registry).removesuffix(b"# EOF\n")
        return generate_text(self.registry)


class Exposition:
    """Joins the audience store and the exporter's own metrics into one scrape body.

    Gzip: the audience part (large, changes once per poll) is deflated once per change and
    kept; each scrape deflates only the small own-metrics part and appends it, which yields one
    valid gzip member because the cached part ends on a sync flush (no final block).
    """

    def __init__(self, store: AudienceStore, own: ExporterMetrics) -> None:
        self.store = store
        self.own = own
        self._deflated: dict[bool, tuple[int, bytes, int, int]] = {}

    def body(self, openmetrics: bool) -> bytes:
        tail = self.own.render(openmetrics) + (b"# EOF\n" if openmetrics else b"")
        return self.store.render(openmetrics) + tail

    def gzip_body(self, openmetrics: bool) -> bytes:
        version = self.store.version
        cached = self._deflated.get(openmetrics)
        if cached is None or cached[0] != version:
            audience = self.store.render(openmetrics)
            compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
            deflated = compressor.compress(audience) + compressor.flush(zlib.Z_SYNC_FLUSH)
            cached = (version, deflated, zlib.crc32(audience), len(audience))
            self._deflated[openmetrics] = cached
        _, deflated, crc, size = cached
        tail = self.own.render(openmetrics) + (b"# EOF\n" if openmetrics else b"")
        compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        tail_deflated = compressor.compress(tail) + compressor.flush(zlib.Z_FINISH)
        header = b"\x1f\x8b\x08\x00" + struct.pack("<I", int(time.time())) + b"\x00\xff"
        trailer = struct.pack("<II", zlib.crc32(tail, crc) & 0xFFFFFFFF, (size + len(tail)) & 0xFFFFFFFF)
        return header + deflated + tail_deflated + trailer
