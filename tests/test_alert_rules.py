"""Alert rules, Prometheus and Alertmanager configs: promtool and amtool accept them, and the
promtool unit tests in prometheus/tests show every alert firing and not firing."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.dashboards import exported_metric_names, metric_names, recording_rules

PROMETHEUS_DIR = REPO_ROOT / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
THRESHOLDS = PROMETHEUS_DIR / "thresholds.yml"
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
# Optional per-source override (docs/dashboards-and-alerts.md, "Tuning the alerts"): referenced, never defined by default.
OPTIONAL_THRESHOLDS = {"livestream:threshold:data_stale_seconds"}


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        package = "prometheus-alertmanager" if name == "amtool" else "prometheus"
        pytest.skip(f"{name} not installed (Debian package {package}; CI installs it with apt-get)")
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)


def rules(path: Path) -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules(ALERTS) if "alert" in rule]


def test_promtool_check_rules_passes_with_its_lint() -> None:
    done = run(tool("promtool"), "check", "rules", str(THRESHOLDS), str(ALERTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_check_config_passes_and_loads_every_rule_file() -> None:
    done = run(tool("promtool"), "check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 rule files found" in done.stdout


@pytest.mark.parametrize("path", RULE_TESTS, ids=[path.stem for path in RULE_TESTS])
def test_promtool_rule_unit_tests_pass(path: Path) -> None:
    done = run(tool("promtool"), "test", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


def test_amtool_accepts_the_alertmanager_config() -> None:
    done = run(tool("amtool"), "check-config", str(REPO_ROOT / "alertmanager" / "alertmanager.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_severity_a_summary_and_a_description() -> None:
    for rule in alerts():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"].strip() and rule["annotations"]["description"].strip(), rule["alert"]
        assert rule["alert"].startswith("Livestream"), rule["alert"]


def test_every_alert_is_shown_both_firing_and_not_firing_by_a_unit_test() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - firing == set(), "never shown firing"
    assert names - silent == set(), "never shown not firing"


def test_every_threshold_used_is_defined_and_watched_for_absence() -> None:
    text = ALERTS.read_text()
    used = set(re.findall(r"livestream:threshold:\w+", text)) - OPTIONAL_THRESHOLDS
    defined = {rule["record"] for rule in rules(THRESHOLDS)}
    assert used == defined
    missing_alert = next(rule for rule in alerts() if rule["alert"] == "LivestreamAlertThresholdsMissing")
    assert set(re.findall(r"absent\((livestream:threshold:\w+)\)", missing_alert["expr"])) == defined


def test_rules_select_only_metrics_the_exporter_or_the_rules_produce() -> None:
    known = exported_metric_names() | recording_rules() | OPTIONAL_THRESHOLDS | {"up"}
    for rule in rules(ALERTS):
        names = metric_names(rule["expr"])
        assert names <= known, f"{rule.get('alert') or rule.get('record')}: unknown {names - known}"


def test_prometheus_config_scrapes_the_job_the_alerts_expect() -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert "livestream-exporter" in jobs
    alert_jobs = set(re.findall(r'job="([^"]+)"', ALERTS.read_text()))
    assert alert_jobs and alert_jobs <= jobs
    assert config["rule_files"] == ["thresholds.yml", "alerts.yml", "sharding-alerts.yml"]


JOB_SELECTOR_RULE = "livestream:exporter:up"
JOB_SELECTOR = 'up{job="livestream-exporter"}'


def test_the_scrape_job_is_selected_in_one_place_only() -> None:
    rule_files = [ALERTS, THRESHOLDS, PROMETHEUS_DIR / "sharding-alerts.yml"]
    naming_a_job = [
        rule.get("record") or rule.get("alert")
        for path in rule_files
        for rule in rules(path)
        if re.search(r"\bjob\s*=", rule["expr"])
    ]
    assert naming_a_job == [JOB_SELECTOR_RULE]
    (selector,) = [rule for rule in rules(ALERTS) if rule.get("record") == JOB_SELECTOR_RULE]
    assert selector["expr"].strip() == JOB_SELECTOR


def test_renaming_the_job_in_that_one_place_is_enough_for_the_exporter_down_alert(tmp_path: Path) -> None:
    renamed = ALERTS.read_text().replace(JOB_SELECTOR, 'up{job="monitoring/livestream"}')
    (tmp_path / "alerts.yml").write_text(renamed)
    (tmp_path / "thresholds.yml").write_text(THRESHOLDS.read_text())
    (tmp_path / "test.yml").write_text(
        yaml.safe_dump(
            {
                "rule_files": ["thresholds.yml", "alerts.yml"],
                "evaluation_interval": "1m",
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": [
                            {"series": 'up{job="monitoring/livestream",instance="10.0.0.7:9877"}', "values": "1x5 0x10"}
                        ],
                        "alert_rule_test": [
                            {"eval_time": "5m", "alertname": "LivestreamExporterDown", "exp_alerts": []},
                            {
                                "eval_time": "9m",
                                "alertname": "LivestreamExporterDown",
                                "exp_alerts": [
                                    {
                                        "exp_labels": {
                                            "severity": "critical",
                                            "job": "monitoring/livestream",
                                            "instance": "10.0.0.7:9877",
                                        },
                                        "exp_annotations": {
                                            "summary": "livestream-exporter at 10.0.0.7:9877 is down",
                                            "description": "Prometheus has failed to scrape 10.0.0.7:9877 "
                                            "(job monitoring/livestream) for 2 minutes.",
                                        },
                                    }
                                ],
                            },
                        ],
                    }
                ],
            }
        )
    )
    done = run(tool("promtool"), "test", "rules", str(tmp_path / "test.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_and_threshold_is_documented_in_the_alerts_page() -> None:
    readme = (REPO_ROOT / "docs" / "dashboards-and-alerts.md").read_text()
    for rule in alerts():
        assert f"| `{rule['alert']}` |" in readme, rule["alert"]
    for rule in rules(THRESHOLDS):
        assert rule["record"].removeprefix("livestream:threshold:") in readme, rule["record"]
