"""The fast exposition path says exactly what prometheus_client would say for the same samples,
stays valid at 100k series, and its gzip is one standard gzip member that follows every change."""

from __future__ import annotations

import asyncio
import gzip
import math
import shutil
import subprocess
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client import generate_latest as reference_text
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.openmetrics.exposition import generate_latest as reference_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text
from prometheus_client.utils import floatToGoString

from exporter.families import AUDIENCE_FAMILIES
from exporter.metrics import (
    AudienceStore,
    ExporterMetrics,
    Exposition,
    SourceIdentity,
    format_value,
)
from exporter.poll import PollError, PollResult, Sample
from tests.audience import apply, audience_body

AWKWARD = [
    "plain",
    'quote " inside',
    "back\\slash",
    "trailing backslash\\",
    "new\nline",
    "literal \\n, not a newline",
    'all three: \\ " \n',
    "ünïcødé ✓ 漢字 🎥",
    "",
    "{braces},commas=and spaces",
]
GAUGE_VALUES = [0.0, 1.0, 42.0, -3.0, 0.1, 999999.5, 1234567.0, 1e300, -1e300, 1e-300, 5e-324, 2.0**53 + 2]
GAUGE_VALUES += [math.nan, math.inf, -math.inf]
COUNTER_VALUES = [0.0, 1.0, 86400.0, 1234567.0, 1e300, 1e-300, 0.5]
"""No infinity: a counter never holds one (see test_state_counters), so there is nothing to compare."""
FAMILIES = {family.name: family for family in AUDIENCE_FAMILIES}


def identity(name: str = "src-1", **labels: str) -> SourceIdentity:
    return SourceIdentity(name, "gcore", tuple(labels.items()))


def awkward_samples() -> dict[str, list[Sample]]:
    """One unit per label value, each carrying a gauge and a counter, cycling through values."""
    units: dict[str, list[Sample]] = {}
    for index, text in enumerate(AWKWARD):
        units[f"u{index}"] = [
            Sample.of("livestream_unique_viewers", GAUGE_VALUES[index % len(GAUGE_VALUES)], stream=text, client="7"),
            Sample.of("livestream_concurrent_viewers", GAUGE_VALUES[-1 - index % 3], stream=text),
            Sample.of("livestream_viewer_seconds_total", COUNTER_VALUES[index % len(COUNTER_VALUES)], stream=text),
        ]
    return units


class Reference:
    """A plain prometheus_client registry holding the same series through a custom collector."""

    def __init__(self) -> None:
        self.series: dict[str, list[tuple[dict[str, str], float]]] = {}

    def add(self, source: SourceIdentity, samples: list[Sample]) -> None:
        for sample in samples:
            labels = {"source": source.name, "provider": source.provider, **dict(source.labels), **dict(sample.labels)}
            self.series.setdefault(sample.name, []).append((labels, sample.value))

    def collect(self) -> Iterator[Any]:
        for name, family in FAMILIES.items():
            rows = self.series.get(name)
            if not rows:
                continue
            names = list(rows[0][0])
            if family.kind == "counter":
                metric: Any = CounterMetricFamily(name.removesuffix("_total"), family.help, labels=names)
            else:
                metric = GaugeMetricFamily(name, family.help, labels=names)
            for labels, value in rows:
                metric.add_metric([labels[n] for n in names], value)
            yield metric

    def registry(self) -> CollectorRegistry:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        return registry


def parsed(families: Iterator[Any]) -> dict[str, Any]:
    """Family -> (type, help, {(sample name, sorted labels): value}) with NaN made comparable."""
    out = {}
    for family in families:
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): "NaN" if math.isnan(s.value) else s.value for s in family.samples
        }
        out[family.name] = (family.type, family.documentation, samples)
    return out


def store_with(units: dict[str, list[Sample]], source: SourceIdentity, now: float = 1000.0) -> AudienceStore:
    store = AudienceStore(AUDIENCE_FAMILIES, stale_after=300)
    store.add_source(source)
    apply(store, source.name, PollResult(samples=units), now)
    return store


@pytest.mark.parametrize("constant", ["bench", 'a "quoted\\ team\nname'])
def test_text_exposition_parses_to_what_prometheus_client_renders(constant: str) -> None:
    source = identity(team=constant)
    units = awkward_samples()
    reference = Reference()
    for samples in units.values():
        reference.add(source, samples)
    ours = audience_body(store_with(units, source), False).decode()
    theirs = reference_text(reference.registry()).decode()
    assert parsed(parse_text(ours)) == parsed(parse_text(theirs))
    assert len(ours.splitlines()) == len(theirs.splitlines())


@pytest.mark.parametrize("constant", ["bench", 'a "quoted\\ team\nname'])
def test_openmetrics_exposition_parses_to_what_prometheus_client_renders(constant: str) -> None:
    source = identity(team=constant)
    units = awkward_samples()
    reference = Reference()
    for samples in units.values():
        reference.add(source, samples)
    ours = audience_body(store_with(units, source), True).decode() + "# EOF\n"
    theirs = reference_openmetrics(reference.registry()).decode()
    assert parsed(parse_openmetrics(ours)) == parsed(parse_openmetrics(theirs))


@pytest.mark.parametrize("value", GAUGE_VALUES + COUNTER_VALUES + [123456.789, 1e16, 1e21, 12345678901234567890.0])
def test_values_are_formatted_exactly_as_prometheus_client_does(value: float) -> None:
    assert format_value(value) == floatToGoString(value)


def test_negative_or_nan_counter_totals_are_not_exposed() -> None:
    units = {
        "a": [Sample.of("livestream_viewer_seconds_total", -5, stream="a")],
        "b": [Sample.of("livestream_viewer_seconds_total", math.nan, stream="b")],
        "c": [Sample.of("livestream_viewer_seconds_total", 5, stream="c")],
    }
    body = audience_body(store_with(units, identity()), True).decode() + "# EOF\n"
    [family] = parse_openmetrics(body)
    assert [(s.labels["stream"], s.value) for s in family.samples] == [("c", 5.0)]


def test_exporter_own_metrics_follow_the_audience_under_their_own_headers() -> None:
    source = identity()
    store = store_with(awkward_samples(), source)
    exposition = Exposition(store, ExporterMetrics("1.2.3", "3.11.0"))
    names = [family.name for family in parse_openmetrics(exposition.body(openmetrics=True).decode())]
    assert len(names) == len(set(names))
    assert "livestream_unique_viewers" in names
    assert "livestream_exporter_build_info" in names


def test_a_series_two_units_report_is_written_once() -> None:
    twice = Sample.of("livestream_unique_viewers", 3, stream="x")
    body = audience_body(store_with({"a": [twice], "b": [twice]}, identity()), False).decode()
    assert body.count('stream="x"') == 1


def test_a_unit_whose_labels_change_is_rendered_with_its_new_labels() -> None:
    store = store_with({"a": [Sample.of("livestream_unique_viewers", 3, stream="old")]}, identity())
    apply(store, "src-1", PollResult(samples={"a": [Sample.of("livestream_unique_viewers", 4, stream="new")]}), 1001)
    [family] = parse_text(audience_body(store, False).decode())
    assert [(s.labels["stream"], s.value) for s in family.samples] == [("new", 4.0)]


def test_a_unit_whose_value_changes_keeps_its_labels_and_shows_the_new_value() -> None:
    store = store_with({"a": [Sample.of("livestream_unique_viewers", 3, stream="s")]}, identity(team="t"))
    apply(store, "src-1", PollResult(samples={"a": [Sample.of("livestream_unique_viewers", 9, stream="s")]}), 1001)
    [family] = parse_text(audience_body(store, False).decode())
    assert [(s.labels, s.value) for s in family.samples] == [
        ({"source": "src-1", "provider": "gcore", "stream": "s", "team": "t"}, 9.0)
    ]


def test_a_poll_of_many_slices_renders_every_series_once_in_unit_order() -> None:
    units = {str(i): [Sample.of("livestream_unique_viewers", i, stream=str(i))] for i in range(2500)}
    [family] = parse_text(audience_body(store_with(units, identity()), False).decode())
    assert [sample.value for sample in family.samples] == [float(i) for i in range(2500)]


def test_failed_unit_keeps_its_values_until_stale_after_then_disappears() -> None:
    store = store_with(
        {
            "a": [Sample.of("livestream_unique_viewers", 1, stream="a")],
            "b": [Sample.of("livestream_unique_viewers", 2, stream="b")],
        },
        identity(),
        now=1000.0,
    )
    apply(
        store,
        "src-1",
        PollResult(
            samples={"b": [Sample.of("livestream_unique_viewers", 3, stream="b")]}, failures={"a": PollError("x")}
        ),
        1200.0,
    )
    asyncio.run(store.expire(1300.0))
    assert 'stream="a"' in audience_body(store, False).decode()
    asyncio.run(store.expire(1300.5))
    body = audience_body(store, False).decode()
    assert 'stream="a"' not in body
    assert 'stream="b"} 3.0' in body


def gzip_exposition(sources: int = 3, streams: int = 200) -> Exposition:
    store = AudienceStore(AUDIENCE_FAMILIES, stale_after=300)
    for s in range(sources):
        store.add_source(identity(f"src-{s}", team="t"))
        units = {
            str(i): [Sample.of("livestream_unique_viewers", i * s, stream=str(i), client="1")] for i in range(streams)
        }
        apply(store, f"src-{s}", PollResult(samples=units), 1000.0)
    return Exposition(store, ExporterMetrics("1.2.3", "3.11.0"))


@pytest.mark.parametrize("openmetrics", [False, True])
def test_gzip_body_is_a_single_gzip_member_of_the_plain_body(openmetrics: bool) -> None:
    exposition = gzip_exposition()
    packed = asyncio.run(exposition.gzip_body(openmetrics))
    decoder = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    unpacked = decoder.decompress(packed)
    assert decoder.eof and decoder.unused_data == b""
    assert unpacked == exposition.body(openmetrics)
    assert gzip.decompress(packed) == unpacked


def test_gzip_body_passes_gnu_gzip_integrity_check() -> None:
    tool = shutil.which("gzip")
    if tool is None:
        pytest.skip("gzip not installed")
    exposition = gzip_exposition()
    packed = asyncio.run(exposition.gzip_body(True))
    done = subprocess.run([tool, "-dc"], input=packed, capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout == exposition.body(True)


def test_gzip_body_follows_each_change_of_one_source() -> None:
    exposition = gzip_exposition()

    async def scenario() -> list[bytes]:
        before = await exposition.gzip_body(False)
        await exposition.store.apply_sliced(
            "src-1",
            PollResult(samples={"0": [Sample.of("livestream_unique_viewers", 777, stream="0", client="1")]}),
            1001.0,
        )
        after = await exposition.gzip_body(False)
        return [before, after]

    before, after = asyncio.run(scenario())
    assert b'source="src-1"' in gzip.decompress(before)
    unpacked = gzip.decompress(after)
    assert unpacked == exposition.body(False)
    assert b'source="src-1",provider="gcore",stream="0",client="1",team="t"} 777.0' in unpacked
    assert unpacked.count(b'source="src-1"') == 1


def test_concurrent_gzip_scrapes_after_a_change_get_the_same_valid_body() -> None:
    exposition = gzip_exposition()

    async def scenario() -> list[bytes]:
        return await asyncio.gather(*(exposition.gzip_body(True) for _ in range(8)))

    bodies = asyncio.run(scenario())
    assert {gzip.decompress(body) for body in bodies} == {exposition.body(True)}


def test_promtool_accepts_a_100k_series_exposition() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus); CI installs it")
    store = AudienceStore(AUDIENCE_FAMILIES, stale_after=300)
    for s in range(10):
        name = f"gcore-{s:02d}"
        store.add_source(identity(name, team="bench"))
        units = {
            str(stream): [
                Sample.of(
                    "livestream_unique_viewers",
                    (stream * 7919) % 20000,
                    client="123",
                    stream=str(stream),
                    granularity="1m",
                )
            ]
            for stream in range(s * 10_000, (s + 1) * 10_000)
        }
        apply(store, name, PollResult(samples=units), 1000.0)
    store.add_source(identity("awkward", team='a "quoted\\ team\nname'))
    apply(store, "awkward", PollResult(samples=awkward_samples()), 1000.0)
    body = Exposition(store, ExporterMetrics("1.2.3", "3.11.0")).body(openmetrics=False)
    assert body.count(b"\nlivestream_unique_viewers{") >= 100_000
    done = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=120)
    assert done.returncode == 0, (done.stdout + done.stderr).decode()[:2000]
