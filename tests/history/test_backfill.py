"""`livestream-exporter backfill`: its command line, and a file that promtool imports and a real
Prometheus then answers with exactly the simulators' values at the stamped times."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from exporter.config import parse_config
from exporter.demo.cloudflare import CloudflareSimulator
from exporter.demo.gcore import BUCKETS, GcoreSimulator
from exporter.demo.lls import LlsSimulator
from exporter.demo.naver import NaverSimulator
from exporter.demo.streamscharts import StreamsChartsSimulator
from exporter.history.backfill import collect, join_time_values, parse_time, select
from tests.conftest import exporter_env
from tests.promserver import PrometheusServer, prometheus_binary


def test_a_negative_duration_after_from_is_its_value() -> None:
    assert join_time_values(["--from", "-3h", "--to", "now"]) == ["--from=-3h", "--to=now"]
    assert parse_time("-3h", 10_000.0) == 10_000.0 - 3 * 3600


def test_times_are_rfc3339_now_or_a_negative_duration() -> None:
    assert parse_time("2026-11-29T10:00:00Z", 0) == 1795946400.0
    assert parse_time("now", 42.0) == 42.0
    for bad in ("2026-11-29T10:00:00", "3h", "yesterday"):
        with pytest.raises(ValueError, match="RFC 3339"):
            parse_time(bad, 0)


def run_backfill(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", "backfill", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=exporter_env(),
        cwd=cwd,
    )


def test_no_flag_may_be_abbreviated(tmp_path: Path) -> None:
    done = run_backfill("--config", "x.yaml", "--fr", "-1h", "--to", "now", "--out", "x.om", cwd=tmp_path)
    assert done.returncode == 1
    assert "--from" in done.stderr


def expected_value(sims: dict[str, Any], metric: dict[str, str], ts: float) -> float:
    """The simulator's own value for the point a series shows at `ts`."""
    if metric["provider"] == "gcore":
        width = BUCKETS[metric["granularity"]]
        stream = None if metric["stream"] == "all" else int(metric["stream"])
        return sims["gcore"].viewers(stream, int(ts) - width, width, math.inf)
    if metric["provider"] == "lls":
        picked = [None if metric[key] == "all" else metric[key] for key in ("stream", "protocol", "region")]
        return sims["lls"].peak(*picked, int(ts), ts + 300)
    return sims["naver"].viewers_at(int(ts), metric["device"], metric["video_type"])


@pytest.mark.skipif(prometheus_binary() is None or shutil.which("promtool") is None, reason="needs Prometheus")
def test_backfill_file_imports_with_promtool_and_prometheus_answers_the_simulators_values(
    tmp_path: Path, simulator_thread: Any
) -> None:
    sims: dict[str, Any] = {
        "gcore": GcoreSimulator(),
        "lls": LlsSimulator(),
        "naver": NaverSimulator(),
        "cloudflare": CloudflareSimulator(),
        "streamscharts": StreamsChartsSimulator(),
    }
    sources = [entry for sim in sims.values() for entry in sim.demo_sources(simulator_thread(sim).base_url)]
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"global": {"state_dir": str(tmp_path / "state")}, "sources": sources}))
    output = tmp_path / "history.om"
    started = time.time()

    done = run_backfill(
        "--config", str(config), "--from", "-40m", "--to", "-10m", "--label", "job=backfill",
        "--output", str(output), cwd=tmp_path,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert "demo-cloudflare: skipped" in done.stderr and "demo-streamscharts" in done.stderr
    assert sims["cloudflare"].requests == [] and sims["streamscharts"].requests == []
    text = output.read_text()
    assert text.endswith("\n# EOF\n") and "\n\n" not in text
    data = tmp_path / "prometheus" / "data"
    imported = subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(output), str(data)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    server = PrometheusServer(tmp_path / "prometheus")
    server.start("global: {scrape_interval: 1h}\n")
    try:
        answer = server.api("query", {"query": '{job="backfill"}[1h]', "time": str(time.time())})
    finally:
        server.stop()
    providers_seen = {series["metric"]["provider"] for series in answer["result"]}
    assert providers_seen == {"gcore", "lls", "naver"}
    for series in answer["result"]:
        assert series["values"], series["metric"]
        for ts, value in series["values"]:
            assert started - 2400 <= float(ts) <= time.time() - 600, "only points inside --from..--to"
            assert float(value) == expected_value(sims, series["metric"], float(ts)), (series["metric"], ts)


class FakeTime:
    """The limiter's clock and sleep, and the simulator's clock: a wait passes at once and is recorded."""

    def __init__(self) -> None:
        self.start = time.time()
        self.passed = 0.0
        self.waits: list[float] = []

    def monotonic(self) -> float:
        return self.passed

    def wall(self) -> float:
        return self.start + self.passed

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.passed += seconds


async def collect_lls(
    sim: LlsSimulator, base_url: str, start: float, end: float, clock: FakeTime, sources: tuple[str, ...] = ()
) -> Any:
    config = parse_config({"sources": sim.demo_sources(base_url)}, "c.yaml", Path("."))
    selected, _ = select(config, list(sources))
    for provider in selected:
        provider.clock = clock.wall  # type: ignore[attr-defined]
    return await collect(config, selected, start, end, {}, clock=clock.monotonic, sleep=clock.sleep)


async def test_backfill_waits_for_the_lls_budgets_per_minute_and_per_hour_rather_than_failing(serve_app: Any) -> None:
    clock = FakeTime()
    sim = LlsSimulator(clock=clock.wall)
    base_url = await serve_app(sim.app())

    series, delivered, requests = await collect_lls(sim, base_url, clock.wall() - 210 * 86400, clock.wall(), clock)

    assert delivered and requests == len(sim.requests) > 1000
    assert sim.answered == requests, "no request over 100 per minute or 1000 per hour"
    assert clock.waits and series.sample_count > 0


async def test_backfill_retries_after_an_lls_429_once_its_retry_after_has_passed(serve_app: Any) -> None:
    clock = FakeTime()
    sim = LlsSimulator(clock=clock.wall)
    base_url = await serve_app(sim.app())
    sim.faults.set({"status": 429, "retry_after": "30", "times": 1})

    series, delivered, requests = await collect_lls(sim, base_url, clock.wall() - 3 * 3600, clock.wall(), clock)

    assert delivered, "a 429 is waited out, not a failure"
    assert clock.waits == [30.0]
    assert requests == len(sim.requests) + 1, "the refused request is asked again, once"
    assert len(series.series) == len(sim.demo_sources(base_url)[0]["streams"]) * 2 + 1, "every unit delivered"


async def test_after_a_429_only_the_refused_request_is_sent_again_signed_afresh(serve_app: Any) -> None:
    clock = FakeTime()
    sim = LlsSimulator(clock=clock.wall)
    app = sim.app()
    seen: list[str] = []

    @web.middleware
    async def refuse_the_third(request: web.Request, handler: Any) -> web.StreamResponse:
        seen.append(request.headers["X-SFD-Nonce"])
        if len(seen) == 3:
            return web.json_response({"code": "RateLimit.Exceeded"}, status=429, headers={"Retry-After": "5"})
        return await handler(request)

    app.middlewares.append(refuse_the_third)
    base_url = await serve_app(app)

    _, delivered, requests = await collect_lls(
        sim, base_url, clock.wall() - 5 * 86400, clock.wall(), clock, sources=("demo-lls-region",)
    )

    assert delivered and clock.waits == [5.0]
    asked = [tuple(sorted(query.items())) for query in sim.requests]
    assert len(asked) == len(set(asked)) == requests - 1, "each day asked once, the refused one twice"
    assert len(set(seen)) == len(seen), "the repeated request is signed afresh"


async def test_backfill_gives_up_answers_larger_than_max_response_bytes(
    serve_app: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = FakeTime()
    sim = LlsSimulator(clock=clock.wall)
    base_url = await serve_app(sim.app())
    config = parse_config(
        {"global": {"max_response_bytes": "1KiB"}, "sources": sim.demo_sources(base_url)[:1]}, "c.yaml", Path(".")
    )
    selected, _ = select(config, [])
    for provider in selected:
        provider.clock = clock.wall  # type: ignore[attr-defined]

    series, delivered, _ = await collect(
        config, selected, clock.wall() - 86400, clock.wall(), {}, clock=clock.monotonic, sleep=clock.sleep
    )

    assert not delivered and series.sample_count == 0
    assert "answer larger than global.max_response_bytes (1024 bytes)" in capsys.readouterr().err


def test_the_exporter_takes_no_abbreviated_flag_either(tmp_path: Path) -> None:
    """`livestream-exporter --to 2` (backfill's flag, without `backfill`) is no `--total-shards 2`."""
    done = subprocess.run(
        [sys.executable, "-m", "exporter", "--demo", "--to", "2", "--check-config"],
        capture_output=True, text=True, timeout=60, env=exporter_env(), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode != 0
    assert "--to" in done.stderr
