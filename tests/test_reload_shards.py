"""Reload applies or refuses a new shard: never keeps the old one and reports success. The
`--shard`/`--total-shards` flags win over the config at every reload, as they do at start."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from exporter.config import ConfigError, parse_config
from exporter.demo.gcore import GcoreSimulator
from exporter.metrics import AudienceStore, ExporterMetrics
from exporter.scheduler import Scheduler
from exporter.sharding import Shard
from tests.test_lifecycle import gcore, post, value

STREAMS = list(range(1, 41))


def config_with(tmp_path: Path, **sharding: Any) -> Any:
    source = {
        "name": "g",
        "provider": "gcore",
        "base_url": "http://127.0.0.1:9",
        "api_key": "k3y-abcdef",
        "stream_ids": STREAMS,
    }
    return parse_config({"global": {"state_dir": str(tmp_path), **sharding}, "sources": [source]}, "t.yaml", tmp_path)


def gauge(scheduler: Scheduler, name: str) -> float | None:
    return scheduler.metrics.registry.get_sample_value(name)


async def test_reload_from_one_shard_to_shard_1_of_4_applies_the_new_share(tmp_path: Path) -> None:
    scheduler = Scheduler(config_with(tmp_path), AudienceStore([], 300), ExporterMetrics("t", "3"))
    await scheduler.open()
    try:
        assert len(scheduler.sources["g"].provider.active_units()) == len(STREAMS)
        summary = await scheduler.reload(config_with(tmp_path, shard=1, total_shards=4))
        assert scheduler.shard == Shard(1, 4)
        assert summary.restarted == ["g"]
        owned = scheduler.sources["g"].provider.active_units()
        assert owned == [unit for unit in scheduler.sources["g"].provider.units() if Shard(1, 4).owns("g", unit)]
        assert 0 < len(owned) < len(STREAMS)
        assert (
            gauge(scheduler, "livestream_exporter_shard_ordinal"),
            gauge(scheduler, "livestream_exporter_total_shards"),
        ) == (1, 4)
        assert scheduler.metrics.registry.get_sample_value(
            "livestream_exporter_owned_units", {"source": "g", "provider": "gcore"}
        ) == len(owned)
    finally:
        await scheduler.close()


async def test_a_shard_this_host_cannot_take_refuses_the_reload_and_keeps_the_running_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "exporter-9")
    scheduler = Scheduler(config_with(tmp_path), AudienceStore([], 300), ExporterMetrics("t", "3"))
    await scheduler.open()
    try:
        with pytest.raises(ConfigError) as refused:
            await scheduler.reload(config_with(tmp_path, shard="auto", total_shards=4))
        assert "'exporter-9' gives shard 9, out of range for 4 shards" in refused.value.lines[0]
        assert scheduler.shard == Shard(0, 1)
        assert len(scheduler.sources["g"].provider.active_units()) == len(STREAMS)
    finally:
        await scheduler.close()


def shards_served(exporter: Any) -> tuple[float | None, float | None]:
    body = exporter.metrics()
    return value(body, "livestream_exporter_shard_ordinal"), value(body, "livestream_exporter_total_shards")


def test_post_reload_to_a_new_shard_count_serves_it(run_exporter: Any, simulator_thread: Any, tmp_path: Path) -> None:
    sim = simulator_thread(GcoreSimulator())
    config = tmp_path / "config.yaml"
    sources = "sources:\n" + gcore("a", sim, stream_ids=[101, 102, 103, 104, 105, 106, 107, 108])
    config.write_text(f"global: {{state_dir: {str(tmp_path)!r}}}\n" + sources)
    exporter = run_exporter("--config", str(config))
    exporter.wait_until(lambda: shards_served(exporter) == (0, 1))

    config.write_text(f"global: {{state_dir: {str(tmp_path)!r}, shard: 1, total_shards: 4}}\n" + sources)
    assert post(f"{exporter.base_url}/-/reload") == (200, b"Reloaded\n")
    assert shards_served(exporter) == (1, 4)
    assert "restarted=a" in exporter.log()


def test_shard_flags_still_win_over_the_config_after_a_reload(
    run_exporter: Any, simulator_thread: Any, tmp_path: Path
) -> None:
    sim = simulator_thread(GcoreSimulator())
    config = tmp_path / "config.yaml"
    sources = "sources:\n" + gcore("a", sim, stream_ids=[101, 102, 103, 104, 105, 106, 107, 108])
    config.write_text(f"global: {{state_dir: {str(tmp_path)!r}}}\n" + sources)
    exporter = run_exporter("--config", str(config), "--shard", "1", "--total-shards", "2")
    exporter.wait_until(lambda: shards_served(exporter) == (1, 2))

    config.write_text(f"global: {{state_dir: {str(tmp_path)!r}, shard: 0, total_shards: 3}}\n" + sources)
    assert post(f"{exporter.base_url}/-/reload") == (200, b"Reloaded\n")
    assert shards_served(exporter) == (1, 2)
