"""AudienceStore: units, staleness and the counter rule, without any network."""

from __future__ import annotations

import gc

from exporter.families import AUDIENCE_FAMILIES
from exporter.metrics import AudienceStore, SourceIdentity
from exporter.poll import ALL_UNITS, PollError, PollResult, Sample
from tests.audience import apply, audience_body, counter_state


def store(stale_after: float = 300) -> AudienceStore:
    audience = AudienceStore(AUDIENCE_FAMILIES, stale_after)
    audience.add_source(SourceIdentity("s", "gcore", (("team", "a"),)))
    return audience


def viewers(stream: str, value: float) -> Sample:
    return Sample.of("livestream_unique_viewers", value, stream=stream)


def sessions(audience: AudienceStore) -> float:
    """The value the scrape shows for the source's one session counter."""
    [line] = [
        line
        for line in audience_body(audience, False).decode().splitlines()
        if line.startswith("livestream_sessions_total{")
    ]
    return float(line.rsplit(" ", 1)[1])


def test_series_carry_source_provider_and_constant_labels() -> None:
    audience = store()
    apply(audience, "s", PollResult(samples={"1": [viewers("1", 5)]}), now=0)
    assert audience_body(audience, False).decode().splitlines()[2] == (
        'livestream_unique_viewers{source="s",provider="gcore",stream="1",team="a"} 5.0'
    )


async def test_failed_unit_keeps_last_value_until_stale_after_then_vanishes() -> None:
    audience = store(stale_after=60)
    await audience.apply_sliced("s", PollResult(samples={"1": [viewers("1", 5)], "2": [viewers("2", 7)]}), now=0)
    await audience.apply_sliced(
        "s", PollResult(samples={"2": [viewers("2", 8)]}, failures={"1": PollError("x")}), now=30
    )
    assert 'stream="1"' in audience_body(audience, False).decode()
    await audience.expire(now=61)
    body = audience_body(audience, False).decode()
    assert 'stream="1"' not in body and 'stream="2"' in body


def test_whole_source_failure_keeps_every_unit() -> None:
    audience = store()
    apply(audience, "s", PollResult(samples={"1": [viewers("1", 5)]}), now=0)
    apply(audience, "s", PollResult(failures={ALL_UNITS: PollError("down")}), now=10)
    assert 'stream="1"' in audience_body(audience, False).decode()


def test_stream_leaving_the_answer_leaves_metrics_at_once() -> None:
    audience = store()
    apply(audience, "s", PollResult(samples={"1": [viewers("1", 5)], "2": [viewers("2", 7)]}), now=0)
    apply(audience, "s", PollResult(samples={"2": [viewers("2", 7)]}), now=10)
    assert 'stream="1"' not in audience_body(audience, False).decode()


def test_counter_sums_the_highest_value_seen_per_part_and_never_decreases() -> None:
    audience = store()
    day = lambda part, value: Sample.of("livestream_sessions_total", value, part=part)  # noqa: E731
    apply(audience, "s", PollResult(samples={"u": [day("2023-07-14", 10), day("2023-07-15", 4)]}), now=0)
    assert sessions(audience) == 14
    apply(audience, "s", PollResult(samples={"u": [day("2023-07-14", 9), day("2023-07-15", 6)]}), now=1)
    assert sessions(audience) == 16
    apply(audience, "s", PollResult(samples={"u": [day("2023-07-15", 6), day("2023-07-16", 1)]}), now=2)
    assert sessions(audience) == 17


def test_counter_state_round_trips_through_a_restart() -> None:
    before = store()
    apply(before, "s", PollResult(samples={"u": [Sample.of("livestream_sessions_total", 3, part="d1")]}), now=0)
    after = AudienceStore(AUDIENCE_FAMILIES, 300)
    after.add_source(SourceIdentity("s", "gcore"), counter_state(before, "s"))
    apply(after, "s", PollResult(samples={"u": [Sample.of("livestream_sessions_total", 2, part="d1")]}), now=0)
    assert sessions(after) == 3


def test_openmetrics_names_counter_family_without_total_suffix() -> None:
    audience = store()
    apply(audience, "s", PollResult(samples={"u": [Sample.of("livestream_sessions_total", 3, part="d")]}), now=0)
    body = audience_body(audience, True).decode()
    assert "# TYPE livestream_sessions counter\n" in body
    assert "\nlivestream_sessions_total{" in body


def test_a_thousand_units_with_counters_leave_almost_nothing_for_the_garbage_collector_to_walk() -> None:
    audience = store()
    gc.collect()
    before = len(gc.get_objects())
    units = {
        str(unit): [
            viewers(str(unit), 5),
            Sample.of("livestream_sessions_total", 3, part="2026-01-01", stream=str(unit)),
        ]
        for unit in range(1000)
    }
    apply(audience, "s", PollResult(samples=units), now=0)
    del units
    for _ in range(4):  # a tuple is untracked by the first collection that finds its members so
        gc.collect()
    assert len(gc.get_objects()) - before < 50
