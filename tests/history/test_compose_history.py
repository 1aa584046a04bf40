"""The compose stack's gap filling as shipped: the exporter's history config passes its own
check, points at the stack's Prometheus with the scrape's labels, and that Prometheus takes remote
writes as old as the exporter sends (promtool checks prometheus.yml in test_alert_rules.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from exporter.settings import parse_duration
from tests.conftest import REPO_ROOT, exporter_env

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
PROMETHEUS_YML = REPO_ROOT / "prometheus" / "prometheus.yml"


def host_path(service: dict[str, Any], container_path: str) -> str:
    """The file in this checkout that compose mounts at `container_path`."""
    mounts = dict(volume.split(":")[1::-1] for volume in service.get("volumes", []))
    return str(REPO_ROOT / mounts[container_path])


def exporter_command_here() -> list[str]:
    exporter = COMPOSE["services"]["exporter"]
    command = list(exporter["command"])
    config_at = command.index("--config") + 1
    command[config_at] = host_path(exporter, command[config_at])
    return command


def history_settings() -> dict[str, Any]:
    command = exporter_command_here()
    config = yaml.safe_load(Path(command[command.index("--config") + 1]).read_text(encoding="utf-8"))
    return config["global"]["history"]


def test_the_exporters_history_config_passes_check_config_as_compose_runs_it() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "exporter", *exporter_command_here(), "--check-config"],
        capture_output=True, text=True, timeout=60, env=exporter_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_history_goes_to_the_stacks_prometheus_with_the_scrapes_labels() -> None:
    history = history_settings()
    prometheus = yaml.safe_load(PROMETHEUS_YML.read_text())
    (job,) = prometheus["scrape_configs"]
    (target,) = job["static_configs"][0]["targets"]
    port = COMPOSE["services"]["prometheus"]["ports"][0].split(":")[-1]
    assert history["remote_write_url"] == f"http://prometheus:{port}/api/v1/write"
    assert history["labels"] == {"job": job["job_name"], "instance": target}


def test_the_stacks_prometheus_takes_remote_writes_as_old_as_max_age() -> None:
    prometheus = yaml.safe_load(PROMETHEUS_YML.read_text())
    assert "--web.enable-remote-write-receiver" in COMPOSE["services"]["prometheus"]["command"]
    window = parse_duration(prometheus["storage"]["tsdb"]["out_of_order_time_window"])
    assert parse_duration(history_settings()["max_age"]) <= window
