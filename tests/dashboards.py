"""Reading the Grafana dashboards and rule files as data: their queries, variables and metric names.

Shared by the static dashboard tests and the end-to-end test that runs every panel query on a
real Prometheus.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO_ROOT

DASHBOARD_DIR = REPO_ROOT / "grafana" / "dashboards"
RULE_FILES = (REPO_ROOT / "prometheus" / "thresholds.yml", REPO_ROOT / "prometheus" / "alerts.yml")

# What Grafana puts in place of its built-in variables, for running a query outside Grafana.
BUILTIN_VALUES = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")
_LABEL_VALUES = re.compile(r"^\s*label_values\((?:(?P<selector>.*),\s*)?(?P<label>\w+)\s*\)\s*$", re.S)


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref_id: str
    expr: str

    @property
    def name(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref_id}"


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARD_DIR.glob("*.json"))


def load_dashboard(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside (collapsed) rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def panel_queries() -> list[PanelQuery]:
    found = []
    for path in dashboard_files():
        dashboard = load_dashboard(path)
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                found.append(PanelQuery(dashboard["title"], panel["title"], target["refId"], target["expr"]))
    return found


def annotation_queries() -> list[PanelQuery]:
    found = []
    for path in dashboard_files():
        dashboard = load_dashboard(path)
        for annotation in dashboard.get("annotations", {}).get("list", []):
            if "expr" in annotation:
                found.append(
                    PanelQuery(dashboard["title"], f"annotation {annotation['name']}", "-", annotation["expr"])
                )
    return found


def variable_queries() -> list[tuple[str, dict[str, Any]]]:
    """(dashboard title, variable) for every variable that queries Prometheus."""
    return [
        (load_dashboard(path)["title"], variable)
        for path in dashboard_files()
        for variable in load_dashboard(path)["templating"]["list"]
        if variable["type"] == "query"
    ]


SCRAPE_JOB = "livestream-exporter"
"""The job of prometheus/prometheus.yml: what the `job` variable's "All" stands for there (it has
no `.*`: Grafana sends the regex of the values it offers, here that one job)."""


def fill_variables(expr: str) -> str:
    """The query as Grafana sends it with every variable on "All" (`job`: the scraped job; the
    others: regex `.*`)."""

    def replace(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        return SCRAPE_JOB if name == "job" else BUILTIN_VALUES.get(name, ".*")

    return _VARIABLE.sub(replace, expr)


def parse_label_values(query: str) -> tuple[str | None, str]:
    """`label_values(selector, label)` -> (selector or None, label)."""
    match = _LABEL_VALUES.match(query)
    if match is None:
        raise ValueError(f"not a label_values() query: {query!r}")
    return match["selector"], match["label"]


_NAME_REGEX = re.compile(r'__name__=~"([^"]+)"')


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: bare names, and `__name__=~"a_(b|c)_d"` expanded."""
    names = set()
    for pattern in _NAME_REGEX.findall(expr):
        group = re.search(r"\(([^()]*)\)", pattern)
        if group:
            names |= {pattern[: group.start()] + choice + pattern[group.end() :] for choice in group[1].split("|")}
        else:
            names.add(pattern)
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    names |= set(re.findall(r"\b(livestream[_:][\w:]*|up|ALERTS)\b", without_strings))
    return names


def recording_rules() -> set[str]:
    names = set()
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            names |= {rule["record"] for rule in group["rules"] if "record" in rule}
    return names


def exported_metric_names() -> set[str]:
    """Every series name the exporter can expose: the audience families and its own metrics."""
    from exporter.families import AUDIENCE_FAMILIES
    from exporter.selfmetrics import HISTORY_METRICS, SELF_METRICS

    names = {family.name for family in AUDIENCE_FAMILIES}
    suffixes = {"histogram": ("_bucket", "_sum", "_count")}
    for metric in (*SELF_METRICS, *HISTORY_METRICS):
        names |= {metric.name + suffix for suffix in suffixes.get(metric.kind, ("",))}
    return names
