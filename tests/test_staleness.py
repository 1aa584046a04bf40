"""Staleness through a real exporter process: a failing source's last good values stay until
`stale_after` and then vanish, a stream that leaves the vendor's answer leaves /metrics at once,
and another source is never disturbed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.demo.gcore import GcoreSimulator

STALE_AFTER = 4.0


def scrape(exporter: Any) -> dict[str, Any]:
    """One scrape, read at one instant: viewers per source, source_up and last success."""
    seen: dict[str, Any] = {"at": time.time(), "viewers": {}, "up": {}, "last_success": {}}
    for family in text_string_to_metric_families(exporter.metrics()):
        for sample in family.samples:
            source = sample.labels.get("source")
            if sample.name == "livestream_unique_viewers":
                seen["viewers"].setdefault(source, {})[sample.labels["stream"]] = sample.value
            elif sample.name == "livestream_exporter_source_up":
                seen["up"][source] = sample.value
            elif sample.name == "livestream_exporter_last_success_timestamp_seconds":
                seen["last_success"][source] = sample.value
    return seen


def age(seen: dict[str, Any], source: str) -> float:
    return seen["at"] - seen["last_success"][source]


def test_failing_source_keeps_values_until_stale_after_and_leaving_streams_vanish_at_once(
    run_exporter: Any, simulator_thread: Any, tmp_path: Path
) -> None:
    flaky, steady = simulator_thread(GcoreSimulator()), simulator_thread(GcoreSimulator())
    config = tmp_path / "config.yaml"
    config.write_text(
        f"global: {{stale_after: {STALE_AFTER:g}s, timeout: 1s, state_dir: {str(tmp_path)!r}}}\n"
        "sources:\n"
        f"  - {{name: flaky, provider: gcore, base_url: {flaky.base_url}, api_key: {flaky.simulator.api_key!r},"
        " stream_ids: [101, 102], interval: 500ms}\n"
        f"  - {{name: steady, provider: gcore, base_url: {steady.base_url}, api_key: {steady.simulator.api_key!r},"
        " interval: 500ms}\n"
    )
    exporter = run_exporter("--config", str(config))
    good = exporter.wait_until(lambda: (s := scrape(exporter)) and len(s["viewers"].get("flaky", {})) == 2 and s)
    assert set(good["viewers"]["flaky"]) == {"101", "102"}

    flaky.fault(status=500)
    failing = exporter.wait_until(lambda: (s := scrape(exporter)) and s["up"]["flaky"] == 0 and s)
    assert age(failing, "flaky") < STALE_AFTER
    assert set(failing["viewers"]["flaky"]) == {"101", "102"}, "last good values survive the failure"
    assert failing["up"]["steady"] == 1 and failing["viewers"]["steady"]

    gone = exporter.wait_until(lambda: (s := scrape(exporter)) and "flaky" not in s["viewers"] and s, timeout=20)
    assert age(gone, "flaky") >= STALE_AFTER, "values vanish no sooner than stale_after"
    assert gone["up"] == {"flaky": 0, "steady": 1} and gone["viewers"]["steady"]

    flaky.fault()
    back = exporter.wait_until(lambda: (s := scrape(exporter)) and s["up"]["flaky"] == 1 and s, timeout=20)
    assert set(back["viewers"]["flaky"]) == {"101", "102"}, "recovery publishes at once"

    flaky.fault(json=[])
    left = exporter.wait_until(lambda: (s := scrape(exporter)) and "flaky" not in s["viewers"] and s)
    assert left["up"]["flaky"] == 1 and age(left, "flaky") < STALE_AFTER, "gone because it left the answer"


def test_an_interval_not_shorter_than_stale_after_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from exporter.config import parse_config
    from exporter.metrics import AudienceStore, ExporterMetrics
    from exporter.scheduler import Scheduler

    source = {"provider": "gcore", "api_key": "k3y-abcdef"}
    config = parse_config(
        {
            "global": {"stale_after": "5m"},
            "sources": [{"name": "hourly", "granularity": "1h", **source}, {"name": "ok", **source}],
        },
        "t.yaml",
        tmp_path,
    )
    Scheduler(config, AudienceStore([], 300), ExporterMetrics("t", "3"))
    warned = [record.source for record in caplog.records if "stale_after" in record.getMessage()]
    assert warned == ["hourly"]
