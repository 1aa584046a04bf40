"""Gap bookkeeping: what a failing source or a restart leaves behind, visible before it is filled."""

from __future__ import annotations

import json
from pathlib import Path

from prometheus_client import CollectorRegistry

from exporter.config import parse_config
from exporter.history.filler import GapFiller
from exporter.history.settings import HistorySettings
from exporter.poll import ALL_UNITS, PollError, PollResult
from exporter.selfmetrics import ExporterMetrics
from exporter.sharding import resolve
from exporter.sources import SourceFactory, SourceRuntime

SETTINGS = HistorySettings(remote_write_url="http://127.0.0.1:9/api/v1/write")


def runtime() -> SourceRuntime:
    source = {"name": "g", "provider": "gcore", "api_key": "k" * 24, "interval": "10s"}
    config = parse_config({"sources": [source]}, "config.yaml", Path("."))
    built = SourceFactory(resolve(0, 1), ExporterMetrics("0", "0"), str).build(config.sources[0], config, {})
    assert built is not None
    return built


def pending(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value(
        "livestream_exporter_history_pending_seconds", {"source": "g", "provider": "gcore"}
    )


async def test_a_failing_source_shows_its_pending_gap_and_fills_nothing_yet(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    filler = GapFiller(SETTINGS, str(tmp_path), registry)
    source = runtime()
    filler.after_poll(source, PollResult(samples={"all": []}), 1000.0)

    filler.after_poll(source, PollResult(failures={ALL_UNITS: PollError("HTTP 503", status=503)}), 1100.0)

    assert pending(registry) == 100.0
    assert filler.status("g") == "waiting for the source to answer to fill a gap since 1970-01-01T00:16:40Z"
    await filler.close()


async def test_the_last_published_time_survives_a_restart_in_its_own_file(tmp_path: Path) -> None:
    filler = GapFiller(SETTINGS, str(tmp_path), CollectorRegistry())
    filler.after_poll(runtime(), PollResult(samples={"all": []}), 1000.0)
    await filler.close()

    saved = json.loads((tmp_path / "history" / "g.json").read_text())

    assert saved == {"at": 1000.0, "behind": {}}


async def test_without_global_history_nothing_is_kept_or_exposed(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    filler = GapFiller(None, str(tmp_path), registry)

    filler.after_poll(runtime(), PollResult(samples={"all": []}), 1000.0)

    assert not (tmp_path / "history").exists()
    assert pending(registry) is None


async def test_global_history_added_by_a_reload_takes_effect(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    filler = GapFiller(None, str(tmp_path), registry)

    filler.configure(SETTINGS)
    filler.after_poll(runtime(), PollResult(samples={"all": []}), 1000.0)

    assert pending(registry) == 0.0
    await filler.close()
