"""Automatic gap filling against a real Prometheus 2.42 with the remote-write receiver and an
out-of-order window, scraping the exporter: a restart's gap and a vendor outage are filled with
the simulator's own values at the stamped times; a refusing receiver leaves the exporter healthy
and the refusal counted."""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from exporter.demo.gcore import GcoreSimulator
from tests.conftest import free_port, http_get
from tests.promserver import PrometheusServer, prometheus_binary

pytestmark = pytest.mark.skipif(prometheus_binary() is None, reason="needs Prometheus")

STREAM = 101
INTERVAL = "2s"


def prometheus_config(exporter_port: int) -> str:
    return yaml.safe_dump(
        {
            "global": {"scrape_interval": "1s"},
            "storage": {"tsdb": {"out_of_order_time_window": "2h"}},
            "scrape_configs": [
                {"job_name": "exporter", "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}
            ],
        }
    )


def exporter_config(tmp_path: Path, vendor_url: str, sim: GcoreSimulator, write_url: str, port: int) -> Path:
    config = {
        "global": {
            "state_dir": str(tmp_path / "state"),
            "history": {
                "remote_write_url": write_url,
                "labels": {"job": "exporter", "instance": f"127.0.0.1:{port}"},
            },
        },
        "sources": [
            {
                "name": "gcore",
                "provider": "gcore",
                "base_url": vendor_url,
                "api_key": sim.api_key,
                "granularity": "1m",
                "stream_ids": [STREAM],
                "interval": INTERVAL,
            }
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def metric_value(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def history_points(server: PrometheusServer, since: float) -> dict[float, float]:
    """Samples of the stream's series at whole minutes after `since`: only history lands there
    (scrapes are stamped at arbitrary milliseconds)."""
    result = server.api("query", {"query": f'livestream_unique_viewers{{stream="{STREAM}"}}[2h]'})["result"]
    return {
        float(ts): float(value)
        for series in result
        for ts, value in series["values"]
        if float(ts) % 60 == 0 and float(ts) > since
    }


class RefusingReceiver:
    """A remote-write endpoint that refuses everything as Prometheus does without the window."""

    def __init__(self) -> None:
        self.requests = 0
        self.url = ""

    async def write(self, request: web.Request) -> web.Response:
        self.requests += 1
        return web.Response(status=400, text="out of bounds")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v1/write", self.write)
        return app


@pytest.fixture
def serve_refusing_receiver(simulator_thread: Any) -> RefusingReceiver:
    receiver = RefusingReceiver()
    receiver.url = f"{simulator_thread(receiver).base_url}/api/v1/write"
    return receiver


@pytest.fixture
def stack(tmp_path: Path, simulator_thread: Any, run_exporter: Any) -> Any:
    sim = GcoreSimulator()
    vendor = simulator_thread(sim)
    port = free_port()
    server = PrometheusServer(tmp_path / "prometheus")
    server.start(prometheus_config(port), flags=("--web.enable-remote-write-receiver",))
    config = exporter_config(tmp_path, vendor.base_url, sim, f"{server.base_url}/api/v1/write", port)

    def start() -> Any:
        exporter = run_exporter("--config", str(config), f"--web.listen-address=127.0.0.1:{port}")
        exporter.base_url = f"http://127.0.0.1:{port}"
        return exporter

    yield sim, vendor, server, start, tmp_path / "state" / "history" / "gcore.json"
    server.stop()


def test_a_restart_gap_is_filled_with_the_vendors_values(stack: Any) -> None:
    sim, _, server, start, state_file = stack
    first = start()
    first.wait_until(lambda: state_file.exists() and metric_value(first.metrics(), "livestream_unique_viewers"))
    server.wait_until(lambda: server.query(f'livestream_unique_viewers{{stream="{STREAM}"}}'), 30)
    first.stop()
    down_since = time.time() - 15 * 60
    state_file.write_text(json.dumps({"at": down_since, "behind": {}}))  # the exporter was down 15 minutes

    second = start()

    filled = server.wait_until(
        lambda: len(history_points(server, down_since)) >= 14 and history_points(server, down_since), 60
    )
    assert all(ts > down_since for ts in filled)
    assert filled == {ts: float(sim.viewers(STREAM, int(ts) - 60, 60, math.inf)) for ts in filled}
    sent = second.wait_until(
        lambda: metric_value(second.metrics(), "livestream_exporter_history_samples_total", outcome="sent")
    )
    assert sent >= len(filled)
    assert metric_value(second.metrics(), "livestream_exporter_history_pending_seconds") == 0


def test_a_vendor_outage_is_filled_once_the_vendor_answers(stack: Any) -> None:
    sim, vendor, server, start, _ = stack
    exporter = start()
    exporter.wait_until(lambda: metric_value(exporter.metrics(), "livestream_exporter_source_up") == 1)
    vendor.fault(status=503)
    exporter.wait_until(lambda: metric_value(exporter.metrics(), "livestream_exporter_source_up") == 0)
    outage_seen = time.time()
    minute_passed = math.floor(outage_seen / 60) * 60 + 60
    exporter.wait_until(
        lambda: (
            time.time() > minute_passed + 1
            and metric_value(exporter.metrics(), "livestream_exporter_history_pending_seconds") > 0
        ),
        timeout=90,
    )

    vendor.fault()

    filled = server.wait_until(lambda: history_points(server, outage_seen - 60).get(minute_passed), 60)
    assert filled == float(sim.viewers(STREAM, int(minute_passed) - 60, 60, math.inf))
    exporter.wait_until(lambda: metric_value(exporter.metrics(), "livestream_exporter_history_pending_seconds") == 0)


def test_a_refusing_receiver_leaves_the_exporter_healthy_and_counts_the_refusal(
    tmp_path: Path, simulator_thread: Any, serve_refusing_receiver: Any, run_exporter: Any
) -> None:
    sim = GcoreSimulator()
    vendor = simulator_thread(sim)
    port = free_port()
    config = exporter_config(tmp_path, vendor.base_url, sim, serve_refusing_receiver.url, port)
    state_file = tmp_path / "state" / "history" / "gcore.json"
    state_file.parent.mkdir(parents=True)
    state_file.write_text(json.dumps({"at": time.time() - 15 * 60, "behind": {}}))

    exporter = run_exporter("--config", str(config), f"--web.listen-address=127.0.0.1:{port}")
    exporter.base_url = f"http://127.0.0.1:{port}"

    rejected = exporter.wait_until(
        lambda: metric_value(exporter.metrics(), "livestream_exporter_history_samples_total", outcome="rejected")
    )
    assert rejected >= 14
    assert serve_refusing_receiver.requests == 1, "a 4xx is never retried"
    assert metric_value(exporter.metrics(), "livestream_exporter_source_up") == 1
    assert http_get(f"{exporter.base_url}/-/healthy")[0] == 200
    assert re.search(r"history not delivered.*out of bounds", exporter.log())
