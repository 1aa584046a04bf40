"""The Grafana dashboards are valid, provisionable, portable and query only metrics that exist.

Whether each query returns data is checked on a real Prometheus in test_stack_e2e.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.dashboards import (
    annotation_queries,
    dashboard_files,
    exported_metric_names,
    load_dashboard,
    metric_names,
    panel_queries,
    panels,
    parse_label_values,
    recording_rules,
    variable_queries,
)

DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}
DASHBOARDS = {path.stem: path for path in dashboard_files()}
AUDIENCE_METRICS = ("livestream_concurrent_viewers", "livestream_unique_viewers", "livestream_peak_viewers")


def test_the_two_dashboards_exist() -> None:
    titles = {load_dashboard(path)["title"] for path in DASHBOARDS.values()}
    assert titles == {"Live audience", "Exporter health"}


@pytest.mark.parametrize("path", DASHBOARDS.values(), ids=DASHBOARDS.keys())
def test_dashboard_has_the_fields_grafana_provisioning_needs(path: Path) -> None:
    dashboard = load_dashboard(path)
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"])
    assert dashboard["title"] and dashboard.get("id") is None
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels(dashboard):
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]


def test_dashboard_uids_are_unique() -> None:
    uids = [load_dashboard(path)["uid"] for path in DASHBOARDS.values()]
    assert len(uids) == len(set(uids))


def _datasource_refs(node: Any, where: str = "") -> list[tuple[str, Any]]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                found.append((where, value))
            else:
                found.extend(_datasource_refs(value, f"{where}.{key}"))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found.extend(_datasource_refs(item, f"{where}[{index}]"))
    return found


@pytest.mark.parametrize("path", DASHBOARDS.values(), ids=DASHBOARDS.keys())
def test_every_datasource_is_the_datasource_variable_never_a_fixed_uid(path: Path) -> None:
    refs = _datasource_refs(load_dashboard(path))
    assert refs
    assert [where for where, ref in refs if ref != DATASOURCE_REF] == []


@pytest.mark.parametrize("path", DASHBOARDS.values(), ids=DASHBOARDS.keys())
def test_variables_pick_datasource_job_provider_and_source_with_all_as_regex(path: Path) -> None:
    variables = {variable["name"]: variable for variable in load_dashboard(path)["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    expected = {"datasource", "job", "provider", "source"} | ({"stream"} if path.stem == "live-audience" else set())
    assert set(variables) == expected
    for name in expected - {"datasource", "job"}:
        variable = variables[name]
        assert variable["type"] == "query" and variable["datasource"] == DATASOURCE_REF
        assert variable["multi"] and variable["includeAll"] and variable["allValue"] == ".*", name
        parse_label_values(variable["query"])


@pytest.mark.parametrize("path", DASHBOARDS.values(), ids=DASHBOARDS.keys())
def test_job_variable_offers_every_job_that_scrapes_an_exporter_and_all_means_those(path: Path) -> None:
    """As the community mixins do: the job is picked, never assumed. Its "All" has no `.*`, so a
    query of `up` counts the exporter's targets and no other job's."""
    variables = {variable["name"]: variable for variable in load_dashboard(path)["templating"]["list"]}
    job = variables["job"]
    assert job["type"] == "query" and job["datasource"] == DATASOURCE_REF
    assert parse_label_values(job["query"]) == ("livestream_exporter_build_info", "job")
    assert job["multi"] and job["includeAll"] and "allValue" not in job
    for name in variables.keys() - {"datasource", "job"}:
        assert 'job=~"$job"' in variables[name]["query"], name


@pytest.mark.parametrize("query", panel_queries() + annotation_queries(), ids=lambda q: q.name)
def test_no_query_names_a_job_of_its_own(query) -> None:
    assert not re.search(r'\bjob\s*(=|!=|!~)\s*"', query.expr), query.expr
    for metric, body in _SELECTOR.findall(query.expr):
        if metric or "__name__" in body or "alertname" in body:
            assert 'job=~"$job"' in body, query.expr
    for bare in re.findall(r"\b(up|livestream_[a-z_]+)\b(?![{\w])", re.sub(r'"[^"]*"', '""', query.expr)):
        if bare in metric_names(query.expr):
            raise AssertionError(f"{bare} is selected without the job variable in {query.expr}")


def test_every_panel_has_a_query_with_a_unique_ref_id() -> None:
    for path in DASHBOARDS.values():
        for panel in panels(load_dashboard(path)):
            if panel["type"] == "row":
                continue
            refs = [target["refId"] for target in panel["targets"]]
            assert refs and len(refs) == len(set(refs)), panel["title"]
            assert all(target["expr"].strip() for target in panel["targets"]), panel["title"]


@pytest.mark.parametrize("query", panel_queries() + annotation_queries(), ids=lambda q: q.name)
def test_queries_select_only_metrics_the_exporter_or_the_rules_produce(query) -> None:
    known = exported_metric_names() | recording_rules() | {"up", "ALERTS"}
    names = metric_names(query.expr)
    assert names, f"no metric found in {query.expr}"
    assert names <= known, f"unknown metrics: {names - known}"


_SELECTOR = re.compile(r"(?:\b(livestream[_:][\w:]*))?\{([^{}]*)\}")


@pytest.mark.parametrize("query", panel_queries(), ids=lambda q: q.name)
def test_queries_of_per_source_metrics_honour_the_provider_and_source_variables(query) -> None:
    unlabelled = {"livestream_exporter_build_info", "livestream_exporter_config_last_reload_successful"}
    for name in metric_names(query.expr) - unlabelled - {"up"}:
        selectors = [body for metric, body in _SELECTOR.findall(query.expr) if metric == name or not metric]
        assert selectors, f"{name} is selected without label matchers"
        for body in selectors:
            assert 'provider=~"$provider"' in body and 'source=~"$source"' in body, body
            if query.dashboard == "Live audience" and name.startswith(AUDIENCE_METRICS):
                assert 'stream=~"$stream"' in body, body


def test_unique_and_concurrent_viewers_are_never_in_one_sum() -> None:
    for query in panel_queries():
        names = metric_names(query.expr)
        if {"livestream_concurrent_viewers", "livestream_unique_viewers"} <= names:
            assert not re.search(r"\bsum\b", query.expr), query.name


def test_variable_queries_are_label_values_of_exporter_metrics() -> None:
    known = exported_metric_names()
    for _, variable in variable_queries():
        selector, _ = parse_label_values(variable["query"])
        assert selector is not None and metric_names(selector) <= known, variable["name"]


def test_provisioning_points_grafana_at_prometheus_and_the_dashboard_folder() -> None:
    datasources = yaml.safe_load((REPO_ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert [ds["type"] for ds in datasources["datasources"]] == ["prometheus"]
    providers = yaml.safe_load((REPO_ROOT / "grafana/provisioning/dashboards/livestream.yml").read_text())
    assert [provider["type"] for provider in providers["providers"]] == ["file"]
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
