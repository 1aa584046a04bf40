"""The stack on real processes: `python -m exporter --demo` scraped every second by Debian's
Prometheus with the shipped rules, and every dashboard query run through Prometheus's HTTP API.

One exporter and one Prometheus serve the whole module; each panel query is its own test so a
failure names the dashboard, the panel and the query.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT, ExporterProcess
from tests.dashboards import (
    RULE_FILES,
    PanelQuery,
    annotation_queries,
    fill_variables,
    panel_queries,
    parse_label_values,
    variable_queries,
)
from tests.promserver import PROMETHEUS_MISSING, PrometheusServer, prometheus_binary

pytestmark = pytest.mark.skipif(prometheus_binary() is None, reason=PROMETHEUS_MISSING)

DATA_TIMEOUT = 60.0


def stack_config(exporter_address: str) -> str:
    """prometheus/prometheus.yml as shipped, pointed at the test exporter, every second, no Alertmanager."""
    config = yaml.safe_load((REPO_ROOT / "prometheus" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config.pop("alerting")
    config["rule_files"] = [str(path) for path in RULE_FILES]
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "livestream-exporter"]
    job["static_configs"] = [{"targets": [exporter_address]}]
    return yaml.safe_dump(config)


def _has_data(server: PrometheusServer) -> bool:
    """Three scrapes of every own series, and the recording rules evaluated on them."""
    samples = server.query("min(count_over_time(livestream_exporter_requests_total[1m]))")
    return (
        bool(samples)
        and float(samples[0]["value"][1]) >= 3
        and bool(server.query("livestream:audience"))
        and bool(server.query("livestream:data_stale_threshold_seconds"))
    )


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    directory: Path = tmp_path_factory.mktemp("stack")
    server = PrometheusServer(directory / "prometheus")
    history = directory / "history.yaml"  # as docker/history.yaml: gap filling into this Prometheus
    history.write_text(
        yaml.safe_dump({"global": {"state_dir": str(directory / "state"), "history": {
            "remote_write_url": f"{server.base_url}/api/v1/write", "labels": {"job": "livestream-exporter"}}}})
    )  # fmt: skip
    exporter = ExporterProcess(["--demo", "--config", str(history)], directory)
    try:
        exporter.wait_until(lambda: "livestream_unique_viewers{" in exporter.metrics(), timeout=30)
        server.start(stack_config(f"127.0.0.1:{exporter.port}"), flags=("--web.enable-remote-write-receiver",))
        server.wait_until(lambda: _has_data(server), timeout=DATA_TIMEOUT)
        yield server
    finally:
        server.stop()
        exporter.stop()


@pytest.mark.parametrize("query", panel_queries(), ids=lambda q: q.name)
def test_panel_query_returns_data(prometheus: PrometheusServer, query: PanelQuery) -> None:
    expr = fill_variables(query.expr)
    assert "$" not in expr, f"unfilled variable in {expr}"
    assert prometheus.query(expr), f"no data for {expr}"


@pytest.mark.parametrize("query", annotation_queries(), ids=lambda q: q.name)
def test_annotation_query_is_accepted(prometheus: PrometheusServer, query: PanelQuery) -> None:
    """Alerts may or may not be firing, so an empty answer is fine; an error is not, and whatever
    comes back is a vector of alerts."""
    expr = fill_variables(query.expr)
    assert "$" not in expr, f"unfilled variable in {expr}"
    result = prometheus.query(expr)
    assert isinstance(result, list)
    assert all(sample["metric"].get("alertname") for sample in result), result


@pytest.mark.parametrize("entry", variable_queries(), ids=lambda e: f"{e[0]} / ${e[1]['name']}")
def test_variable_offers_values(prometheus: PrometheusServer, entry) -> None:
    _, variable = entry
    selector, label = parse_label_values(variable["query"])
    series = prometheus.api("series", {"match[]": fill_variables(selector or "{__name__=~'.+'}")})
    assert {item[label] for item in series if item.get(label)}, f"no values of {label} for {selector}"


def test_every_rule_evaluates_without_error(prometheus: PrometheusServer) -> None:
    groups = prometheus.api("rules")["groups"]
    assert {group["name"] for group in groups} == {"livestream-thresholds", "livestream"}
    broken = [
        (rule["name"], rule.get("lastError")) for group in groups for rule in group["rules"] if rule["health"] != "ok"
    ]
    assert broken == []


def test_the_demo_data_is_fresh_by_the_stale_alerts_measure(prometheus: PrometheusServer) -> None:
    assert prometheus.query("livestream:data_freshness_seconds")
    assert prometheus.query("livestream:data_freshness_seconds > livestream:data_stale_threshold_seconds") == []
