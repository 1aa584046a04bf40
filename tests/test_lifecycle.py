"""The process lifecycle: stopping on SIGTERM/SIGINT while a vendor hangs, and reloading the
config on SIGHUP or `POST /-/reload` without disturbing the sources that did not change."""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.demo.gcore import GcoreSimulator
from tests.audience import counter_state
from tests.conftest import http_get


def samples(body: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def value(body: str, name: str, **labels: str) -> float | None:
    wanted = set(labels.items())
    found = [v for (n, ls), v in samples(body).items() if n == name and wanted <= ls]
    return sum(found) if found else None


def gcore(name: str, sim: Any, **extra: Any) -> str:
    keys = {"base_url": sim.base_url, "api_key": sim.simulator.api_key, "interval": "500ms", **extra}
    inner = ", ".join(f"{key}: {val!r}" if isinstance(val, str) else f"{key}: {val}" for key, val in keys.items())
    return f"  - {{name: {name}, provider: gcore, {inner}}}\n"


def post(url: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_within_five_seconds_while_a_vendor_request_hangs(
    signum: int, run_exporter: Any, simulator_thread: Any, tmp_path: Path
) -> None:
    sim = simulator_thread(GcoreSimulator())
    sim.fault(delay=3600)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"global: {{timeout: 1h, state_dir: {str(tmp_path)!r}}}\nsources:\n" + gcore("hung", sim, stream_ids=[101])
    )
    exporter = run_exporter("--config", str(config))
    exporter.wait_until(lambda: sim.simulator.faults.held >= 1)
    started = time.monotonic()
    exporter.proc.send_signal(signum)
    assert exporter.proc.wait(timeout=5) == 0
    assert time.monotonic() - started < 5
    log = exporter.log()
    assert "shutting down" in log and "Traceback" not in log
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", exporter.port), timeout=2):
        pass


def test_reload_keeps_unchanged_sources_restarts_changed_ones_and_refuses_a_bad_config(
    run_exporter: Any, simulator_thread: Any, tmp_path: Path
) -> None:
    sim = simulator_thread(GcoreSimulator())
    config = tmp_path / "config.yaml"
    head = f"global: {{state_dir: {str(tmp_path / 'state')!r}}}\nsources:\n"
    first = head + gcore("a", sim, stream_ids=[101]) + gcore("b", sim, stream_ids=[102])
    config.write_text(first)
    exporter = run_exporter("--config", str(config))
    requests = "livestream_exporter_requests_total"
    body = exporter.wait_until(
        lambda: (
            (text := exporter.metrics())
            and (value(text, requests, source="a") or 0) >= 4
            and (value(text, requests, source="b") or 0) >= 6
            and text
        )
    )
    a_before, b_before = value(body, requests, source="a"), value(body, requests, source="b")

    config.write_text(
        head
        + gcore("a", sim, stream_ids=[101])
        + gcore("b", sim, stream_ids=[102], granularity="5m")
        + gcore("c", sim, stream_ids=[103])
    )
    exporter.proc.send_signal(signal.SIGHUP)
    exporter.wait_until(lambda: "config reloaded" in exporter.log())
    body = exporter.metrics()
    assert value(body, requests, source="a") >= a_before, "an unchanged source keeps its counters"
    assert (value(body, requests, source="b") or 0) < b_before, "a changed source restarts"
    assert value(body, "livestream_exporter_config_last_reload_successful") == 1
    assert 'added=c restarted=b removed="" unchanged=1' in exporter.log()
    body = exporter.wait_until(
        lambda: (
            (text := exporter.metrics())
            and 'granularity="5m"' in text
            and value(text, "livestream_exporter_source_up", source="c") == 1
            and text
        )
    )
    assert value(body, "livestream_unique_viewers", source="b", granularity="1m") is None

    config.write_text(first.replace("stream_ids", "stream_idz", 1))
    status, answer = post(f"{exporter.base_url}/-/reload")
    expected = f'{config}: sources[0] "a": stream_idz: unknown key'
    assert (status, answer.decode()) == (500, f"failed to reload config:\n{expected}\n")
    assert f"problem={json.dumps(expected)}" in exporter.log()
    body = exporter.metrics()
    assert value(body, "livestream_exporter_config_last_reload_successful") == 0
    assert value(body, "livestream_exporter_source_up", source="c") == 1, "the running config stays"

    config.write_text(first)
    assert post(f"{exporter.base_url}/-/reload") == (200, b"Reloaded\n")
    body = exporter.metrics()
    assert value(body, "livestream_exporter_config_last_reload_successful") == 1
    assert 'source="c"' not in body, "a removed source leaves /metrics"
    assert http_get(f"{exporter.base_url}/-/reload")[0] == 405
    assert "Traceback" not in exporter.log()


async def test_reload_cancels_the_in_flight_poll_of_a_removed_source(serve_app: Any, tmp_path: Path) -> None:
    import asyncio

    from exporter.config import parse_config
    from exporter.families import AUDIENCE_FAMILIES
    from exporter.metrics import AudienceStore, ExporterMetrics
    from exporter.scheduler import Scheduler

    sim = GcoreSimulator()
    base_url = await serve_app(sim.app())
    sim.faults.set({"delay": 3600})
    source = {"provider": "gcore", "base_url": base_url, "api_key": sim.api_key}
    config = {"global": {"timeout": "1h", "state_dir": str(tmp_path)}, "sources": [{"name": "gone", **source}]}
    scheduler = Scheduler(
        parse_config(config, "t.yaml", tmp_path), AudienceStore(AUDIENCE_FAMILIES, 300), ExporterMetrics("t", "3")
    )
    await scheduler.open()
    try:
        poll = asyncio.create_task(scheduler.poll("gone"))
        while sim.faults.held == 0:
            await asyncio.sleep(0.01)
        config["sources"] = [{"name": "kept", **source}]
        summary = await asyncio.wait_for(scheduler.reload(parse_config(config, "t.yaml", tmp_path)), 5)
        assert (summary.removed, summary.added) == (["gone"], ["kept"])
        assert await asyncio.wait_for(poll, 1) is False
        assert list(scheduler.sources) == ["kept"]
        assert counter_state(scheduler.store, "kept") == {"counters": []}
        with pytest.raises(KeyError):
            counter_state(scheduler.store, "gone")
    finally:
        sim.faults.set({})
        await scheduler.close()
