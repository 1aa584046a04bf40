"""The exporter's own metrics come from one table: what is served is what the table declares, the
metrics page lists each with its type and labels, and a removed source leaves no series behind."""

from __future__ import annotations

import doctest
import importlib
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.selfmetrics import SELF_METRICS, ExporterMetrics
from tests.conftest import REPO_ROOT


def served_families(metrics: ExporterMetrics) -> dict[str, str]:
    body = metrics.render(openmetrics=False).decode()
    return {family.name: family.type for family in text_string_to_metric_families(body)}


def test_what_is_served_is_what_the_table_declares() -> None:
    metrics = ExporterMetrics("t", "3")
    metrics.add_source("s", "gcore", 60)
    for metric in SELF_METRICS:
        if metric.labels:
            metrics.families[metric.name].labels(*(f"x{i}" for i in range(len(metric.labels))))
    declared = {metric.name.removesuffix("_total"): metric.kind for metric in SELF_METRICS}
    assert served_families(metrics) == declared


def test_the_metrics_page_lists_every_own_metric_with_its_type_and_labels() -> None:
    readme = (REPO_ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    for metric in SELF_METRICS:
        row = re.search(rf"^\| `{metric.name}` \| (\w+) \|([^|]*)\|", readme, re.MULTILINE)
        assert row is not None, f"{metric.name} is missing from docs/metrics.md"
        labels = tuple(label.strip() for label in row.group(2).strip(" `").split(",") if label.strip())
        assert (row.group(1), labels) == (metric.kind, metric.labels), metric.name


def test_a_removed_source_leaves_no_series_of_its_own() -> None:
    metrics = ExporterMetrics("t", "3")
    for source in ("gone", "kept"):
        metrics.add_source(source, "gcore", 60)
        metrics.requests.labels(source, "gcore", "viewers", "200").inc()
        metrics.credits_spent.labels(source, "gcore").inc()
        metrics.owned_units.labels(source, "gcore").set(3)
    metrics.remove_source("gone", "gcore")
    body = metrics.render(openmetrics=False).decode()
    assert 'source="gone"' not in body
    assert body.count('source="kept"') >= 8


@pytest.mark.parametrize(
    "module", ["exporter.selfmetrics", "exporter.status", "exporter.failurelog", "exporter.backoff"]
)
def test_the_examples_in_docstrings_hold(module: str) -> None:
    failed, tried = doctest.testmod(importlib.import_module(module))
    assert tried > 0 and failed == 0
