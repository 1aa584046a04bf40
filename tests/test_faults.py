"""Every vendor misbehaving in every documented way: each fault is a failed poll that is counted,
said once in the log without a secret, retried on the backoff's schedule, leaves the other
sources and /metrics alone, and heals at the next good answer.

The matrix is parametrised over `exporter.demo.simulators()`, so a vendor is covered as soon as
its simulator exists. Two instances of the vendor's simulator run side by side: one gets the
fault (`POST /_sim/fault`, see exporter.demo.faults), the other stays healthy. Shape drift is
derived from each simulator's own good answer by the fault injector (`drift`: nulls,
missing keys, wrong types), so no vendor has to list its drifted bodies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import parse_config
from exporter.demo import serve, simulators
from exporter.families import AUDIENCE_FAMILIES
from exporter.logs import Redactor
from exporter.metrics import AudienceStore, ExporterMetrics, Exposition
from exporter.scheduler import Scheduler
from tests.conftest import free_port

TIMEOUT = 0.5


@dataclass(frozen=True)
class Fault:
    name: str
    setting: Callable[[], dict[str, Any]] | None
    code: str
    retry_after: float | None = None
    credentials: bool = False


FAULTS = [
    Fault("connection_refused", None, "connect_error"),
    Fault("connection_dropped", lambda: {"close": True}, "connect_error"),
    Fault("slow_answer_past_timeout", lambda: {"delay": TIMEOUT * 3}, "timeout"),
    Fault("hang", lambda: {"delay": 3600}, "timeout"),
    Fault("internal_error_500", lambda: {"status": 500}, "500"),
    Fault("bad_gateway_html_502", lambda: {"status": 502, "body": "<html><h1>502 Bad Gateway</h1></html>"}, "502"),
    Fault("unavailable_503_retry_after", lambda: {"status": 503, "retry_after": "90"}, "503", retry_after=90),
    Fault("rate_limited_429_seconds", lambda: {"status": 429, "retry_after": "120"}, "429", retry_after=120),
    Fault(
        "rate_limited_429_http_date",
        lambda: {"status": 429, "retry_after": formatdate(time.time() + 120, usegmt=True)},
        "429",
        retry_after=118,
    ),
    Fault("unauthorized_401", lambda: {"status": 401}, "401", credentials=True),
    Fault("forbidden_403", lambda: {"status": 403}, "403", credentials=True),
    Fault("html_with_200", lambda: {"status": 200, "body": "<html><body>Maintenance</body></html>"}, "invalid_body"),
    Fault(
        "invalid_json_with_200",
        lambda: {"status": 200, "body": '{"data": [{"truncated', "content_type": "application/json"},
        "invalid_body",
    ),
    Fault("drift_nulls", lambda: {"drift": "nulls"}, "invalid_body"),
    Fault("drift_missing_keys", lambda: {"drift": "missing_keys"}, "invalid_body"),
    Fault("drift_wrong_types", lambda: {"drift": "wrong_types"}, "invalid_body"),
]
VENDORS = [sim.provider for sim in simulators()]


def fresh_simulator(provider: str) -> Any:
    return next(sim for sim in simulators() if sim.provider == provider)


def source_from(sim: Any, base_url: str, name: str) -> dict[str, Any]:
    """The simulator's first demo source under a new name: what a user would configure."""
    return {**sim.demo_sources(base_url)[0], "name": name}


def request_counts(metrics: ExporterMetrics, source: str) -> dict[str, float]:
    counts: dict[str, float] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == "livestream_exporter_requests_total" and sample.labels["source"] == source:
                counts[sample.labels["code"]] = counts.get(sample.labels["code"], 0) + sample.value
    return counts


def audience_series(body: str, source: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        if not family.name.startswith("livestream_exporter_")
        for sample in family.samples
        if sample.labels.get("source") == source
    }


@dataclass
class Bench:
    scheduler: Scheduler
    metrics: ExporterMetrics
    exposition: Exposition
    secrets: list[str]

    def up(self, source: str) -> float | None:
        provider = self.scheduler.sources[source].identity.provider
        return self.metrics.registry.get_sample_value(
            "livestream_exporter_source_up", {"source": source, "provider": provider}
        )

    def body(self) -> str:
        return self.exposition.body(openmetrics=False).decode()


def failure_warnings(caplog: pytest.LogCaptureFixture, source: str) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "exporter.failurelog"
        and getattr(record, "source", None) == source
        and record.levelno == logging.WARNING
        and record.getMessage() in ("poll failed", "credentials rejected")
    ]


@pytest.mark.parametrize("fault", FAULTS, ids=[fault.name for fault in FAULTS])
@pytest.mark.parametrize("vendor", VENDORS)
async def test_fault_is_a_counted_failed_poll_that_heals_at_the_next_good_answer(
    vendor: str, fault: Fault, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    faulty_sim, healthy_sim = fresh_simulator(vendor), fresh_simulator(vendor)
    port = free_port()
    faulty_runner, faulty_url = await serve(faulty_sim.app(), port=port)
    healthy_runner, healthy_url = await serve(healthy_sim.app())
    sources = [source_from(faulty_sim, faulty_url, "faulty"), source_from(healthy_sim, healthy_url, "healthy")]
    config = parse_config(
        {"global": {"timeout": f"{int(TIMEOUT * 1000)}ms", "state_dir": str(tmp_path)}, "sources": sources},
        "test.yaml",
        tmp_path,
    )
    redactor = Redactor()
    redactor.replace(config.secret_values())
    store = AudienceStore(AUDIENCE_FAMILIES, config.global_.stale_after)
    metrics = ExporterMetrics("test", "3")
    scheduler = Scheduler(config, store, metrics, redact=redactor)
    bench = Bench(scheduler, metrics, Exposition(store, metrics), config.secret_values())
    await scheduler.open()
    scheduler.start(paused=True)
    try:
        assert await scheduler.poll_all_once(), scheduler.sources["faulty"].status.last_error
        good_series = audience_series(bench.body(), "faulty")
        before = request_counts(metrics, "faulty")
        caplog.clear()
        caplog.set_level(logging.DEBUG)

        if fault.setting is None:
            await faulty_runner.cleanup()
        else:
            faulty_sim.faults.set(fault.setting())
        polled_at = scheduler.timetable.clock()
        assert await scheduler.poll("faulty") is False
        assert await scheduler.poll("healthy") is True

        assert (bench.up("faulty"), bench.up("healthy")) == (0, 1)
        after = request_counts(metrics, "faulty")
        new = {code: after[code] - before.get(code, 0) for code in after if after[code] > before.get(code, 0)}
        assert set(new) == {fault.code}
        if fault.name.startswith("drift_"):
            good, drifted = faulty_sim.faults.last_drift
            assert drifted != good, "the drift must change the vendor's good answer"

        warnings = failure_warnings(caplog, "faulty")
        assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
        assert warnings[0].getMessage() == ("credentials rejected" if fault.credentials else "poll failed")
        assert warnings[0].reason and not any(secret in warnings[0].reason for secret in bench.secrets)
        assert not any(secret in scheduler.sources["faulty"].status.last_error for secret in bench.secrets)

        runtime = scheduler.sources["faulty"]
        assert runtime.retry is not None
        scheduled = scheduler.timetable.due("faulty") - polled_at
        assert scheduled == pytest.approx(runtime.retry.delay, abs=1.0)
        if fault.retry_after is not None:
            assert runtime.retry.delay >= fault.retry_after
        if fault.credentials:
            assert runtime.retry.why == "credentials rejected"
            assert runtime.retry.delay >= scheduler.backoff.credentials_pace(runtime.interval)

        body = bench.body()
        assert audience_series(body, "faulty") == good_series, "last good values survive until stale_after"
        assert audience_series(body, "healthy"), "the healthy source still publishes"

        limiter = scheduler.factory.limiter(runtime.provider)

        def let_retry_after_pass() -> None:
            """Polls are driven by hand here: end the pause a 429 put on the source's key."""
            if fault.code == "429" and limiter is not None:
                assert limiter.delay() >= fault.retry_after - 1, "a 429 pauses every source on the key"
                limiter._paused_until = 0.0

        let_retry_after_pass()
        assert await scheduler.poll("faulty") is False
        assert len(failure_warnings(caplog, "faulty")) == 1, "said once until it recovers"

        if fault.setting is None:
            faulty_runner, _ = await serve(faulty_sim.app(), port=port)
        else:
            faulty_sim.faults.set({})
        let_retry_after_pass()
        assert await scheduler.poll("faulty") is True
        assert bench.up("faulty") == 1
        assert (runtime.status.last_error, runtime.retry, runtime.failures) == (None, None, 0)
        assert audience_series(bench.body(), "faulty")
        assert any(r.getMessage() == "source recovered" for r in caplog.records)
    finally:
        await scheduler.close()
        faulty_sim.faults.set({})
        await faulty_runner.cleanup()
        await healthy_runner.cleanup()


def test_demo_logs_each_simulators_fault_endpoint_for_curl(run_exporter: Any) -> None:
    """docs/operations.md's way to make the demo fail: the fault URL from the log takes a fault."""
    import json
    import re
    import urllib.request

    exporter = run_exporter("--demo")
    exporter.wait_until(lambda: "msg=listening" in exporter.log())
    urls = re.findall(r'msg="demo simulator" provider=(\S+) url=\S+ faults=(\S+)', exporter.log())
    assert {provider for provider, _ in urls} == set(VENDORS)
    for _, url in urls:
        request = urllib.request.Request(url, data=b'{"status": 503, "retry_after": "30"}', method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.loads(response.read()) == {"status": 503, "retry_after": "30"}
        with urllib.request.urlopen(url, timeout=5) as response:
            assert json.loads(response.read()) == {"status": 503, "retry_after": "30"}


async def _gcore_scheduler(base_url: str, tmp_path: Path, stream_ids: list[int]) -> Scheduler:
    config = parse_config(
        {
            "global": {"state_dir": str(tmp_path)},
            "sources": [
                {
                    "name": "g",
                    "provider": "gcore",
                    "base_url": base_url,
                    "api_key": "k3y-abcdef",
                    "stream_ids": stream_ids,
                }
            ],
        },
        "t.yaml",
        tmp_path,
    )
    scheduler = Scheduler(config, AudienceStore(AUDIENCE_FAMILIES, 300), ExporterMetrics("t", "3"))
    await scheduler.open()
    scheduler.start(paused=True)
    return scheduler


async def test_consecutive_failures_wait_one_then_two_intervals_and_success_resets_it(
    serve_app: Any, tmp_path: Path
) -> None:
    from aiohttp import web

    answers = [500, 500, 500, 200]

    async def viewers(request: web.Request) -> web.Response:
        return web.json_response([], status=answers.pop(0))

    app = web.Application()
    app.router.add_get("/streaming/statistics/stream/viewers", viewers)
    scheduler = await _gcore_scheduler(await serve_app(app), tmp_path, [1])
    try:
        delays = []
        for _ in range(3):
            assert await scheduler.poll("g") is False
            delays.append(scheduler.sources["g"].retry.delay)
        assert scheduler.sources["g"].failures == 3
        assert 60 <= delays[0] <= 72 and 96 <= delays[1] <= 120 and 96 <= delays[2] <= 120
        assert await scheduler.poll("g") is True
        assert (scheduler.sources["g"].failures, scheduler.sources["g"].retry) == (0, None)
    finally:
        await scheduler.close()


async def test_a_poll_where_some_streams_answered_keeps_the_normal_interval(serve_app: Any, tmp_path: Path) -> None:
    from aiohttp import web

    async def viewers(request: web.Request) -> web.Response:
        if request.query["stream_id"] == "2":
            return web.json_response({"data": [], "errors": ["internal server error"]}, status=500)
        return web.json_response([])

    app = web.Application()
    app.router.add_get("/streaming/statistics/stream/viewers", viewers)
    scheduler = await _gcore_scheduler(await serve_app(app), tmp_path, [1, 2])
    try:
        planned = scheduler.timetable.due("g")
        assert await scheduler.poll("g") is False
        assert scheduler.sources["g"].retry is None
        assert scheduler.timetable.due("g") == planned
        assert scheduler.sources["g"].status.last_error == "2: internal server error"
    finally:
        await scheduler.close()
