"""Three shards and one unsharded exporter against one Gcore simulator, scraped by a real Prometheus.

What a user of `--total-shards 3` relies on, checked where they would check it (Prometheus's
HTTP API): every configured stream is exported by exactly one replica, together they export
exactly what one unsharded process does, a replica exports nothing of a source it does not
own, and the sharding alert rules load and notice a missing shard.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.demo import serve
from exporter.demo.gcore import STREAM_PEAKS, GcoreSimulator
from tests.conftest import REPO_ROOT, ExporterProcess, free_port, http_get

PROMETHEUS = "/usr/bin/prometheus"
TOTAL = 3
API_KEY = "12345$e2e-sharding-key"
STREAM_SOURCES = [f"streams-{n}" for n in range(8)]
TOTAL_SOURCES = [f"account-{n}" for n in range(4)]
EXPECTED_STREAMS = {(s, str(sid)) for s in STREAM_SOURCES for sid in STREAM_PEAKS} | {(s, "all") for s in TOTAL_SOURCES}
SHARDING_RULES = REPO_ROOT / "prometheus" / "sharding-alerts.yml"


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except OSError:
            last = None
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


class SimulatorThread:
    """The Gcore simulator on its own event loop, so blocking test code never stalls it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        started = asyncio.run_coroutine_threadsafe(serve(GcoreSimulator(api_key=API_KEY).app()), self.loop)
        self.runner, self.base_url = started.result(timeout=10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


class Prometheus:
    """A real Prometheus on a free loopback port, with its storage in the test's directory."""

    def __init__(self, workdir: Path, jobs: dict[str, list[str]], rule_files: list[Path]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": targets}]} for job, targets in jobs.items()
            ],
        }
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "prometheus.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
        wait_for("Prometheus ready", lambda: self.alive() and http_get(f"{self.url}/-/ready")[0] == 200)

    def alive(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
        return True

    def api(self, path: str, **params: str) -> Any:
        status, _, body = http_get(f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}")
        answer = json.loads(body)
        assert status == 200 and answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.api("query", query=expr)["result"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def series_keys(results: list[dict[str, Any]], *labels: str) -> list[tuple[str, ...]]:
    return sorted(tuple(result["metric"].get(label, "") for label in labels) for result in results)


@dataclass
class Cluster:
    prometheus: Prometheus
    shards: list[ExporterProcess]
    unsharded: ExporterProcess


def write_config(directory: Path, simulator_url: str) -> Path:
    directory.mkdir()
    sources = [
        {
            "name": name,
            "provider": "gcore",
            "base_url": simulator_url,
            "api_key": API_KEY,
            "interval": "5s",
            **({"stream_ids": list(STREAM_PEAKS)} if name in STREAM_SOURCES else {}),
        }
        for name in STREAM_SOURCES + TOTAL_SOURCES
    ]
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump({"global": {"state_dir": str(directory / "state")}, "sources": sources}))
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if shutil.which(PROMETHEUS) is None:
        pytest.skip("prometheus not installed (Debian package prometheus); CI installs it")
    workdir = tmp_path_factory.mktemp("sharding")
    simulator = SimulatorThread()
    processes: list[ExporterProcess] = []
    prometheus: Prometheus | None = None
    try:
        for ordinal in range(TOTAL):
            config = write_config(workdir / f"shard-{ordinal}", simulator.base_url)
            args = ["--config", str(config), "--total-shards", str(TOTAL), "--shard", str(ordinal)]
            processes.append(ExporterProcess(args, workdir))
        config = write_config(workdir / "unsharded", simulator.base_url)
        processes.append(ExporterProcess(["--config", str(config)], workdir))
        for process in processes:
            process.wait_until(lambda p=process: http_get(f"{p.base_url}/-/ready")[0] == 200)
        jobs = {
            "sharded": [f"127.0.0.1:{p.port}" for p in processes[:TOTAL]],
            "unsharded": [f"127.0.0.1:{processes[TOTAL].port}"],
        }
        prometheus = Prometheus(workdir, jobs, [SHARDING_RULES])
        wait_for(
            "every target scraped",
            lambda: len(prometheus.query("up == 1")) == TOTAL + 1,  # type: ignore[union-attr]
        )
        yield Cluster(prometheus, processes[:TOTAL], processes[TOTAL])
    finally:
        if prometheus is not None:
            prometheus.stop()
        for process in processes:
            process.stop()
        simulator.stop()


def viewers(cluster: Cluster, job: str) -> list[dict[str, Any]]:
    expr = f'livestream_unique_viewers{{job="{job}"}}'
    return wait_for(
        f"{job}: every stream's series in Prometheus",
        lambda: (found := cluster.prometheus.query(expr)) and len(found) >= len(EXPECTED_STREAMS) and found,
    )


def test_every_configured_stream_is_exported_by_exactly_one_shard(cluster: Cluster) -> None:
    found = viewers(cluster, "sharded")
    assert sorted(set(series_keys(found, "source", "stream"))) == sorted(EXPECTED_STREAMS)
    per_stream = cluster.prometheus.query('count by (source, stream) (livestream_unique_viewers{job="sharded"})')
    assert len(per_stream) == len(EXPECTED_STREAMS)
    assert {result["value"][1] for result in per_stream} == {"1"}
    per_shard = cluster.prometheus.query('count by (instance) (livestream_unique_viewers{job="sharded"})')
    assert len(per_shard) == TOTAL, "every shard should own some of the 28 streams"


def test_the_shards_together_export_what_one_unsharded_process_does(cluster: Cluster) -> None:
    labels = ("source", "provider", "client", "stream", "granularity")
    sharded = series_keys(viewers(cluster, "sharded"), *labels)
    unsharded = series_keys(viewers(cluster, "unsharded"), *labels)
    assert sharded == unsharded
    assert len(unsharded) == len(EXPECTED_STREAMS)


def test_a_shard_exports_nothing_of_a_source_it_does_not_own(cluster: Cluster) -> None:
    viewers(cluster, "sharded")
    owned = cluster.prometheus.query('livestream_exporter_owned_units{job="sharded"} > 0')
    up = cluster.prometheus.query('livestream_exporter_source_up{job="sharded"}')
    owners = series_keys(owned, "instance", "source")
    assert series_keys(up, "instance", "source") == owners
    assert series_keys(cluster.prometheus.query('livestream_exporter_owned_units{job="sharded"}'), "instance") == [
        (instance,) for instance, _ in owners
    ], "a replica exports no owned_units series, not a 0, for a source it does not poll"
    for name in TOTAL_SOURCES:
        assert [source for _, source in owners].count(name) == 1, f"{name} is one request: one owner"


def test_owned_units_add_up_per_source_to_the_unsharded_count(cluster: Cluster) -> None:
    viewers(cluster, "sharded")
    sharded = cluster.prometheus.query('sum by (source) (livestream_exporter_owned_units{job="sharded"})')
    unsharded = cluster.prometheus.query('livestream_exporter_owned_units{job="unsharded"}')
    as_dict = lambda results: {r["metric"]["source"]: r["value"][1] for r in results}  # noqa: E731
    assert as_dict(sharded) == as_dict(unsharded)
    assert as_dict(unsharded) == {**dict.fromkeys(STREAM_SOURCES, "3"), **dict.fromkeys(TOTAL_SOURCES, "1")}


def test_each_shard_reports_its_ordinal_and_the_shard_count(cluster: Cluster) -> None:
    ordinals = cluster.prometheus.query('livestream_exporter_shard_ordinal{job="sharded"}')
    totals = cluster.prometheus.query('livestream_exporter_total_shards{job="sharded"}')
    by_instance = {r["metric"]["instance"]: r["value"][1] for r in ordinals}
    assert by_instance == {f"127.0.0.1:{p.port}": str(i) for i, p in enumerate(cluster.shards)}
    assert [r["value"][1] for r in totals] == ["3"] * TOTAL
    single = cluster.prometheus.query('livestream_exporter_total_shards{job="unsharded"}')
    assert [r["value"][1] for r in single] == ["1"]


def test_sharding_rules_stay_quiet_while_healthy_and_notice_a_stopped_shard(cluster: Cluster) -> None:
    """Runs last in this module: it stops shard 2."""
    groups = cluster.prometheus.api("rules")["groups"]
    rules = {rule["name"]: rule for group in groups for rule in group["rules"]}
    assert {"LivestreamExporterShardMissing", "LivestreamExporterShardCountMismatch"} <= set(rules)
    assert {rule["health"] for rule in rules.values()} == {"ok"}
    shard_alerts = 'ALERTS{alertname=~"LivestreamExporterShard.*"}'
    wait_for("no sharding alert while all shards run", lambda: cluster.prometheus.query(shard_alerts) == [])
    cluster.shards[2].stop()
    pending = wait_for("ShardMissing pending for the sharded job", lambda: cluster.prometheus.query(shard_alerts))
    assert series_keys(pending, "alertname", "job", "alertstate") == [
        ("LivestreamExporterShardMissing", "sharded", "pending")
    ]
