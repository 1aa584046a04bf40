"""The newcomer's path: `livestream-exporter --demo` as a real process, read over HTTP."""

from __future__ import annotations

import gzip
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import exporter_env, http_get


def test_demo_shows_unique_viewers_within_ten_seconds(run_exporter) -> None:
    exporter = run_exporter("--demo")
    body = exporter.wait_until(
        lambda: (text := exporter.metrics()) and "livestream_unique_viewers{" in text and text, timeout=10
    )
    families = {family.name: family for family in text_string_to_metric_families(body)}
    viewers = families["livestream_unique_viewers"].samples
    assert viewers and all(sample.labels["provider"] == "gcore" for sample in viewers)
    assert {"source", "provider", "client", "stream", "granularity"} <= set(viewers[0].labels)


def test_demo_output_passes_promtool_check_metrics(run_exporter) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus); CI installs it")
    exporter = run_exporter("--demo")
    exporter.wait_until(lambda: "livestream_unique_viewers{" in exporter.metrics())
    body = exporter.metrics()
    done = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr


def test_openmetrics_is_served_when_asked_and_gzip_decodes_to_the_same_body(run_exporter) -> None:
    exporter = run_exporter("--demo")
    exporter.wait_until(lambda: http_get(f"{exporter.base_url}/-/ready")[0] == 200)
    accept = {"Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"}
    status, headers, plain = http_get(f"{exporter.base_url}/metrics", accept)
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert plain.endswith(b"# EOF\n")
    status, headers, packed = http_get(f"{exporter.base_url}/metrics", {**accept, "Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip"
    unpacked = gzip.decompress(packed)
    assert unpacked.endswith(b"# EOF\n")
    assert unpacked.split(b"# HELP livestream_exporter_")[0] == plain.split(b"# HELP livestream_exporter_")[0]


def test_landing_health_and_readiness(run_exporter) -> None:
    exporter = run_exporter("--demo")
    exporter.wait_until(lambda: http_get(f"{exporter.base_url}/-/healthy")[0] == 200)
    exporter.wait_until(lambda: http_get(f"{exporter.base_url}/-/ready")[0] == 200)
    status, _, page = http_get(f"{exporter.base_url}/")
    assert status == 200
    assert b"demo-gcore-streams" in page and b"up" in page


def test_sigterm_ends_the_process_cleanly_within_five_seconds(run_exporter) -> None:
    exporter = run_exporter("--demo")
    exporter.wait_until(lambda: http_get(f"{exporter.base_url}/-/ready")[0] == 200)
    started = time.monotonic()
    exporter.proc.send_signal(signal.SIGTERM)
    assert exporter.proc.wait(timeout=5) == 0
    assert time.monotonic() - started < 5
    assert "Traceback" not in exporter.log()


def test_once_prints_exposition_and_exits_zero(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "exporter", "--demo", "--once"],
        capture_output=True,
        text=True,
        env=exporter_env(),
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "livestream_unique_viewers{" in done.stdout
