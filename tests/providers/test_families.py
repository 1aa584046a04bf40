"""The table of metric families is the one place a metric is declared: every provider publishes
only declared families with declared labels, names no metric by hand, and a sample of a family
the table lacks is counted, never published."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exporter.demo import simulators
from exporter.families import AUDIENCE_FAMILIES
from exporter.metrics import AudienceStore, SourceIdentity
from exporter.poll import PollResult, Sample
from exporter.providers import providers
from tests.audience import apply, audience_body
from tests.conftest import REPO_ROOT

DECLARED = {family.name: family for family in AUDIENCE_FAMILIES}
PROVIDER_FILES = sorted((REPO_ROOT / "exporter" / "providers").glob("*.py"))


def test_each_family_is_declared_once() -> None:
    assert len(DECLARED) == len(AUDIENCE_FAMILIES)


@pytest.mark.parametrize("family", AUDIENCE_FAMILIES, ids=lambda family: family.name)
def test_a_family_is_a_counter_exactly_when_its_name_ends_in_total(family) -> None:
    assert (family.kind == "counter") == family.name.endswith("_total")


@pytest.mark.parametrize("vendor", sorted(providers()))
def test_a_provider_lists_only_families_of_the_table(vendor: str) -> None:
    families = providers()[vendor].families
    assert families
    assert [DECLARED.get(family.name) for family in families] == list(families)


def _string_literals_outside_docstrings(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


@pytest.mark.parametrize("path", PROVIDER_FILES, ids=lambda path: path.name)
def test_a_provider_names_no_metric_by_hand(path: Path) -> None:
    assert [text for text in _string_literals_outside_docstrings(path) if text.startswith("livestream_")] == []


@pytest.mark.parametrize("simulator", simulators(), ids=lambda simulator: simulator.provider)
async def test_every_sample_a_vendor_publishes_is_of_its_declared_families_and_labels(
    simulator, serve_app, fetcher
) -> None:
    base_url = await serve_app(simulator.app())
    provider_class = providers()[simulator.provider]
    own = {family.name: family for family in provider_class.families}
    published = 0
    for source in simulator.demo_sources(base_url):
        provider = provider_class(provider_class.settings_model.model_validate(source))
        result = await provider.poll(fetcher, datetime.now(UTC))
        assert result.ok, result.failures
        for sample in (sample for samples in result.samples.values() for sample in samples):
            assert sample.name in own, sample
            assert {name for name, _ in sample.labels} <= set(own[sample.name].labels), sample
            published += 1
    assert published


def test_a_sample_of_an_undeclared_family_is_counted_as_rejected_and_not_published() -> None:
    store = AudienceStore(AUDIENCE_FAMILIES, stale_after=300)
    store.add_source(SourceIdentity("s", "gcore"))
    result = PollResult(
        samples={"all": [Sample.of("livestream_made_up", 1.0), Sample.of("livestream_unique_viewers", 2.0)]}
    )
    apply(store, "s", result, now=1000.0)
    served = audience_body(store, False).decode()
    assert result.rejected_points == 1
    assert "livestream_made_up" not in served and "livestream_unique_viewers" in served


def test_the_metrics_page_lists_exactly_the_declared_families_with_their_types() -> None:
    rows = [line.split("|") for line in (REPO_ROOT / "docs" / "metrics.md").read_text().splitlines()]
    documented = {
        row[1].strip().strip("`"): row[2].strip()
        for row in rows
        if len(row) > 3 and row[1].strip().startswith("`livestream_") and "_exporter_" not in row[1]
    }
    assert documented == {family.name: family.kind for family in AUDIENCE_FAMILIES}
