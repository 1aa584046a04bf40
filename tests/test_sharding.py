"""Sharding: N replicas cover every (source, unit) exactly once, and agree without talking."""

from __future__ import annotations

import collections
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.config import parse_config
from exporter.metrics import AudienceStore, ExporterMetrics
from exporter.poll import RateLimit
from exporter.providers.gcore import Gcore
from exporter.scheduler import Scheduler
from exporter.sharding import (
    Shard,
    ShardError,
    budget_summary,
    ordinal_from_hostname,
    owner,
    requested,
    resolve,
)
from tests.conftest import exporter_env

UNITS = [(f"source-{s}", str(unit)) for s in range(20) for unit in range(500)]


def test_every_unit_is_owned_by_exactly_one_of_n_shards() -> None:
    for total in (1, 2, 3, 7):
        shards = [Shard(i, total) for i in range(total)]
        for source, unit in UNITS[:2000]:
            assert sum(shard.owns(source, unit) for shard in shards) == 1


def test_units_spread_evenly_over_the_shards() -> None:
    total = 5
    counts = collections.Counter(owner(source, unit, total) for source, unit in UNITS)
    assert set(counts) == set(range(total))
    expected = len(UNITS) / total
    for shard, count in counts.items():
        assert abs(count - expected) < 0.05 * expected, (shard, count)


@pytest.mark.parametrize("total", [1, 2, 3, 4, 9])
def test_going_from_n_to_n_plus_one_shards_moves_about_one_in_n_plus_one_and_only_to_the_new_shard(
    total: int,
) -> None:
    moved = 0
    for source, unit in UNITS:
        before, after = owner(source, unit, total), owner(source, unit, total + 1)
        if before != after:
            moved += 1
            assert after == total, "a unit moved between two shards that both still exist"
    share = moved / len(UNITS)
    assert abs(share - 1 / (total + 1)) < 0.01, share


def test_owner_is_the_same_in_every_process_and_release() -> None:
    """blake2b, not the per-process salted built-in hash: replicas must agree, and these values
    must never change between releases, or an upgrade would reshuffle every stream."""
    pinned = [2, 0, 2, 0, 1, 0, 2, 0, 2, 0, 2, 1]
    assert [owner("gcore-prod", str(unit), 3) for unit in range(12)] == pinned
    code = "from exporter.sharding import owner; print([owner('gcore-prod', str(u), 3) for u in range(12)])"
    for seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", code],
            env=exporter_env(PYTHONHASHSEED=seed),
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert done.stdout.strip() == str(pinned)


def test_one_shard_owns_everything() -> None:
    shard = Shard()
    assert not shard.sharded and shard.budget_share == 1.0
    assert all(shard.owns(source, unit) for source, unit in UNITS[:100])


def test_unit_filter_agrees_with_owner() -> None:
    shard = Shard(1, 3)
    owns = shard.unit_filter("source-1")
    for unit in map(str, range(300)):
        assert owns(unit) == (owner("source-1", unit, 3) == 1)
        assert owns(unit) == (owner("source-1", unit, 3) == 1)


@pytest.mark.parametrize(
    ("hostname", "ordinal"),
    [
        ("livestream-exporter-2", 2),
        ("livestream-exporter-0", 0),
        ("livestream-exporter-12.livestream-exporter.monitoring.svc.cluster.local", 12),
        ("exporter-v2-3", 3),
    ],
)
def test_ordinal_comes_from_the_host_names_trailing_number(hostname: str, ordinal: int) -> None:
    assert ordinal_from_hostname(hostname) == ordinal


@pytest.mark.parametrize("hostname", ["laptop", "livestream-exporter", "node7", "x-2a"])
def test_host_name_without_trailing_ordinal_is_a_one_line_error(hostname: str) -> None:
    with pytest.raises(ShardError) as caught:
        ordinal_from_hostname(hostname)
    assert str(caught.value) == (
        f"--shard auto: host name {hostname!r} has no trailing ordinal "
        "(expected a StatefulSet pod name such as livestream-exporter-2)"
    )


def test_auto_resolves_through_the_host_name() -> None:
    assert resolve("auto", 3, lambda: "livestream-exporter-1") == Shard(1, 3)


def test_auto_with_one_shard_is_shard_zero_on_any_host() -> None:
    assert resolve("auto", 1, lambda: "laptop") == Shard(0, 1)


def test_auto_with_an_ordinal_past_the_shard_count_is_an_error() -> None:
    with pytest.raises(ShardError, match=r"host name 'livestream-exporter-3' gives shard 3, out of range for 3"):
        resolve("auto", 3, lambda: "livestream-exporter-3")


def test_flags_win_over_the_config() -> None:
    assert requested("2", "4", 0, 1, "c.yaml") == (2, 4)
    assert requested(None, None, 1, 2, "c.yaml") == (1, 2)
    assert requested("auto", None, 0, 3, "c.yaml") == ("auto", 3)
    assert requested(None, "5", "auto", 1, "c.yaml") == ("auto", 5)


@pytest.mark.parametrize(
    ("flags", "config", "message"),
    [
        (("3", "3"), (0, 1), "--shard: 3 is out of range for 3 shards (--total-shards; valid: 0 to 2)"),
        (
            ("1", None),
            (0, 1),
            "--shard: 1 is out of range for 1 shards (c.yaml: global: total_shards; valid: 0 to 0)",
        ),
        (
            (None, None),
            (4, 2),
            "c.yaml: global: shard: 4 is out of range for 2 shards (c.yaml: global: total_shards; valid: 0 to 1)",
        ),
        ((None, "0"), (0, 1), "--total-shards: must be a whole number of at least 1, got '0'"),
        ((None, "-2"), (0, 1), "--total-shards: must be a whole number of at least 1, got '-2'"),
        ((None, "two"), (0, 1), "--total-shards: must be a whole number of at least 1, got 'two'"),
        (("-1", "3"), (0, 1), "--shard: must be a shard index (0, 1, 2, ...) or auto, got '-1'"),
        (("first", "3"), (0, 1), "--shard: must be a shard index (0, 1, 2, ...) or auto, got 'first'"),
    ],
)
def test_impossible_shard_settings_are_one_line_errors(
    flags: tuple[str | None, str | None], config: tuple[int, int], message: str
) -> None:
    with pytest.raises(ShardError) as caught:
        requested(*flags, *config, "c.yaml")
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)


def test_rate_limits_are_split_rounding_down_but_never_to_zero() -> None:
    limits = (RateLimit(100, 60), RateLimit(1000, 3600), RateLimit(2, 1))
    assert Shard(0, 3).split(limits) == (RateLimit(33, 60), RateLimit(333, 3600), RateLimit(1, 1))
    assert Shard(0, 1).split(limits) == limits


class LimitedGcore(Gcore):
    """Gcore publishes no limits; this stand-in has LLS's, to see how a budget is split."""

    rate_limits = (RateLimit(100, 60), RateLimit(1000, 3600))

    def rate_limit_key(self) -> str | None:
        return "one-account"


def config_of(total: int, shard: int, sources: list[dict]) -> object:
    return parse_config(
        {"global": {"total_shards": total, "shard": shard, "state_dir": "/nonexistent"}, "sources": sources},
        "c.yaml",
        Path("."),
    )


def gcore_source(name: str, stream_ids: list[int] | None = None) -> dict:
    source = {"name": name, "provider": "gcore", "api_key": "key-1234"}
    if stream_ids is not None:
        source["stream_ids"] = stream_ids
    return source


def scheduler_for(total: int, shard: int, sources: list[dict]) -> Scheduler:
    config = config_of(total, shard, sources)
    return Scheduler(config, AudienceStore([], 300), ExporterMetrics("t", "3"))  # type: ignore[arg-type]


SOURCES = [gcore_source(f"streams-{n}", list(range(100 * n, 100 * n + 40))) for n in range(4)] + [
    gcore_source(f"total-{n}") for n in range(6)
]


def test_scheduler_gives_each_provider_only_its_shards_units() -> None:
    polled: collections.Counter[tuple[str, str]] = collections.Counter()
    for ordinal in range(3):
        scheduler = scheduler_for(3, ordinal, SOURCES)
        for name, runtime in scheduler.sources.items():
            polled.update((name, unit) for unit in runtime.provider.active_units())
    expected = {(s["name"], str(sid)) for s in SOURCES for sid in s.get("stream_ids", ["all"])}
    assert set(polled) == expected
    assert set(polled.values()) == {1}


def test_single_request_sources_land_whole_on_one_shard_and_are_absent_elsewhere() -> None:
    schedulers = [scheduler_for(3, ordinal, SOURCES) for ordinal in range(3)]
    for n in range(6):
        name = f"total-{n}"
        holders = [s for s in schedulers if name in s.sources]
        assert len(holders) == 1
        assert all(name in s.other_shards for s in schedulers if s not in holders)
        assert holders[0].shard.ordinal == owner(name, "all", 3)


def test_scheduler_tells_providers_their_budget_share() -> None:
    scheduler = scheduler_for(4, 1, SOURCES)
    assert {runtime.provider.shard.budget_share for runtime in scheduler.sources.values()} == {0.25}
    assert {runtime.provider.shard.budget_share for runtime in scheduler_for(1, 0, SOURCES).sources.values()} == {1.0}


def test_scheduler_limiter_holds_this_replicas_part_of_the_account() -> None:
    scheduler = scheduler_for(3, 0, SOURCES)
    provider = LimitedGcore(scheduler.config.sources[0])
    limiter = scheduler.factory.limiter(provider)
    assert limiter is not None
    assert limiter.limits == (RateLimit(33, 60), RateLimit(333, 3600))


def test_unsharded_scheduler_polls_every_unit_with_the_full_budget() -> None:
    scheduler = scheduler_for(1, 0, SOURCES)
    assert set(scheduler.sources) == {s["name"] for s in SOURCES}
    assert scheduler.other_shards == []
    provider = LimitedGcore(scheduler.config.sources[0])
    assert scheduler.factory.limiter(provider).limits == LimitedGcore.rate_limits  # type: ignore[union-attr]


async def test_scheduler_exports_its_shard_and_owned_units(tmp_path: Path) -> None:
    config = parse_config(
        {"global": {"total_shards": 3, "shard": 2, "state_dir": str(tmp_path)}, "sources": SOURCES},
        "c.yaml",
        Path("."),
    )
    metrics = ExporterMetrics("t", "3")
    scheduler = Scheduler(config, AudienceStore([], 300), metrics)
    await scheduler.open()
    try:
        assert scheduler.sources and scheduler.other_shards
        assert metrics.registry.get_sample_value("livestream_exporter_shard_ordinal") == 2
        assert metrics.registry.get_sample_value("livestream_exporter_total_shards") == 3
        for name, runtime in scheduler.sources.items():
            owned = metrics.registry.get_sample_value(
                "livestream_exporter_owned_units", {"source": name, "provider": "gcore"}
            )
            assert owned == len(runtime.provider.active_units()) > 0
        for name in scheduler.other_shards:
            labels = {"source": name, "provider": "gcore"}
            assert metrics.registry.get_sample_value("livestream_exporter_owned_units", labels) is None
            assert metrics.registry.get_sample_value("livestream_exporter_source_up", labels) is None
    finally:
        await scheduler.close()


def test_check_config_summary_names_sources_and_figures_but_never_the_credential() -> None:
    config = config_of(3, 0, SOURCES[:2])
    providers = [LimitedGcore(source) for source in config.sources]  # type: ignore[attr-defined]
    line = budget_summary(3, providers)
    assert line == (
        "sharded 3 ways: each replica polls about 1/3 of the streams; per-replica budgets "
        "(1/3 of each vendor account's): gcore (streams-0, streams-1): 33 per 1m, 333 per 1h"
    )
    assert "key-1234" not in line and "one-account" not in line
