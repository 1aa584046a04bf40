"""Gap bookkeeping: what a failing source or a restart leaves behind, visible before it is filled."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

from prometheus_client import CollectorRegistry

from exporter.config import parse_config
from exporter.history.filler import GapFiller
from exporter.history.points import HistoryResult
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


async def test_a_429_to_a_history_request_pauses_the_credentials_live_polls_too(tmp_path: Path) -> None:
    factory = SourceFactory(resolve(0, 1), ExporterMetrics("0", "0"), str)
    source = {
        "name": "l", "provider": "lls", "access_key_id": "id-0123456789", "access_key_secret": "s" * 24,
        "domain": "live.example.com", "app": "demoapp", "streams": ["main"], "interval": "60s",
    }  # fmt: skip
    config = parse_config({"sources": [source]}, "config.yaml", Path("."))
    built = factory.build(config.sources[0], config, {})
    assert built is not None and factory.limiter(built.provider) is not None
    asked: list[tuple[float, float]] = []

    async def refused(fetch: object, start: float, end: float) -> HistoryResult:
        asked.append((start, end))
        return HistoryResult(failures={ALL_UNITS: PollError("HTTP 429", status=429, retry_after=120)})

    built.provider.history = refused  # type: ignore[method-assign]
    built.fetcher = SimpleNamespace(session=None)  # type: ignore[assignment]
    filler = GapFiller(SETTINGS, str(tmp_path), CollectorRegistry(), factory.pause_credential)
    now = time.time()
    filler.after_poll(built, PollResult(samples={"all": []}), now - 1000)
    filler.after_poll(built, PollResult(failures={ALL_UNITS: PollError("HTTP 503", status=503)}), now - 500)
    filler.after_poll(built, PollResult(samples={"all": []}), now)
    fill = filler.sources["l"].task
    assert fill is not None
    await fill
    await filler.close()

    assert asked, "the gap was asked for"
    assert factory.limiter(built.provider).delay() > 60  # type: ignore[union-attr]
