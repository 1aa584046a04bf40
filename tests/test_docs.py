"""The docs stay true to the program: the README's commands are CI's, generated tables are what
their code generates, every link and every file named leads somewhere, every vendor has a page."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from exporter.cli import build_parser
from exporter.config import GlobalSettings
from exporter.flagtable import flag_table
from exporter.history.settings import HistorySettings
from exporter.metrictable import BEGIN, END, metric_tables
from exporter.providers import providers
from exporter.settings import SourceSettings
from tests.conftest import REPO_ROOT

README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
PAGES = sorted([README, *DOCS.rglob("*.md")])
_LINK = re.compile(r"\]\(([^)\s]+)\)|<(https?://[^>]+)>")
_REPO_PATH = re.compile(r"`((?:exporter|tests|bench|prometheus|grafana|deploy|docker|alertmanager|\.ci)/[\w/.-]*)`")


def code_block_after(text: str, marker: str) -> list[str]:
    """The lines of the first fenced code block after `marker`."""
    rest = text[text.index(marker) :]
    match = re.search(r"```\w*\n(.*?)```", rest, re.S)
    assert match is not None, f"no code block after {marker!r}"
    return match[1].strip().splitlines()


def relative_links(page: Path) -> list[str]:
    """The targets of the page's links that point into the repository (no scheme, no mailto);
    a link to a heading of the page itself is `#anchor`."""
    targets = (match[1] for match in _LINK.finditer(page.read_text(encoding="utf-8")) if match[1])
    return [target for target in targets if not re.match(r"[a-z]+:", target)]


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings: lower case, punctuation dropped, spaces to -."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    headings = re.findall(r"^#+ (.+)$", text, re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def vendor_page_metrics(vendor: str) -> set[str]:
    page = (DOCS / "vendors" / f"{vendor}.md").read_text(encoding="utf-8")
    return {line.split("`")[1] for line in page.splitlines() if line.startswith("| `livestream_")}


def test_every_flag_is_documented_with_its_default() -> None:
    page = CONFIGURATION.read_text()
    for action in build_parser()._actions:
        flag = next((s for s in action.option_strings if s.startswith("--")), None)
        if flag in (None, "--help"):
            continue
        row = next((line for line in page.splitlines() if line.startswith(f"| `{flag}")), None)
        assert row is not None, f"{flag} missing from the flag table of docs/configuration.md"
        if isinstance(action.default, str) and action.default != argparse.SUPPRESS and flag != "--config":
            assert f"`{action.default}`" in row, f"{flag}: docs/configuration.md does not show default {action.default}"


def test_the_flag_table_is_the_one_generated_from_help() -> None:
    assert flag_table() in CONFIGURATION.read_text(), (
        "regenerate it: python -m exporter.flagtable docs/configuration.md"
    )


def test_the_metrics_page_holds_the_tables_generated_from_the_metric_declarations() -> None:
    page = (DOCS / "metrics.md").read_text(encoding="utf-8")
    assert metric_tables() in page, "regenerate it: python -m exporter.metrictable docs/metrics.md"


def test_quick_start_is_two_commands_in_a_virtualenv() -> None:
    commands = code_block_after(README.read_text(), "## Quick start")
    assert commands == ["python3 -m venv .venv && .venv/bin/pip install .", ".venv/bin/livestream-exporter --demo"]


def test_readme_test_command_is_exactly_what_ci_runs_last() -> None:
    commands = code_block_after(README.read_text(), "Run the tests")
    assert len(commands) == 2 and commands[0].startswith("python3 -m venv .venv && ")
    ci = (REPO_ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-len(commands) :] == commands


def test_readme_test_command_gates_coverage_at_the_figure_it_names() -> None:
    readme = README.read_text()
    command = code_block_after(readme, "Run the tests")[1]
    gate = re.search(r"--cov=exporter .*--cov-fail-under=(\d+)", command)
    assert gate is not None, "the test command must measure exporter/ and fail under a coverage figure"
    assert f"{gate[1]} %" in readme, "the README must name the coverage figure in words"


def test_ci_never_stops_a_process_by_name() -> None:
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert not re.search(r"\b(pkill|killall|kill)\b", ci)


def test_project_license_is_an_spdx_string() -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "Apache-2.0"
    setuptools = next(r for r in pyproject["build-system"]["requires"] if r.startswith("setuptools"))
    assert setuptools == "setuptools>=77", "setuptools reads the SPDX form from 77 on"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO_ROOT)))
def test_every_relative_link_points_to_an_existing_file_and_heading(page: Path) -> None:
    broken = []
    for link in relative_links(page):
        path, _, anchor = link.partition("#")
        target = (page.parent / path) if path else page
        if not target.exists() or (anchor and target.suffix == ".md" and anchor not in anchors(target)):
            broken.append(link)
    assert broken == []


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO_ROOT)))
def test_every_repository_file_a_page_names_exists(page: Path) -> None:
    named = _REPO_PATH.findall(page.read_text(encoding="utf-8"))
    missing = [path for path in named if "acme" not in path and not (REPO_ROOT / path).exists()]
    assert missing == []


def test_the_readme_links_every_docs_page_and_the_vendor_folder() -> None:
    linked = {(README.parent / link.split("#")[0]).resolve() for link in relative_links(README) if link[:1] != "#"}
    assert {page.resolve() for page in DOCS.glob("*.md")} - linked == set()
    assert (DOCS / "vendors").resolve() in linked


@pytest.mark.parametrize("vendor", providers())
def test_every_registered_provider_has_its_docs_page(vendor: str) -> None:
    assert (DOCS / "vendors" / f"{vendor}.md").is_file(), f"docs/vendors/{vendor}.md is missing"


@pytest.mark.parametrize("vendor", providers())
def test_a_vendor_pages_metric_table_names_exactly_the_families_it_publishes(vendor: str) -> None:
    assert vendor_page_metrics(vendor) == {family.name for family in providers()[vendor].families}


def test_the_configuration_page_names_every_global_key_and_every_common_source_key() -> None:
    page = CONFIGURATION.read_text(encoding="utf-8")
    keys = [*GlobalSettings.model_fields, *SourceSettings.model_fields]
    assert [key for key in keys if f"`{key}`" not in page and f" {key}:" not in page] == []


def test_the_history_page_names_every_key_of_global_history() -> None:
    page = (DOCS / "history.md").read_text(encoding="utf-8")
    assert [key for key in HistorySettings.model_fields if f"{key}:" not in page] == []


@pytest.mark.parametrize("vendor", providers())
def test_a_vendor_page_has_a_row_for_each_of_its_config_keys(vendor: str) -> None:
    page = (DOCS / "vendors" / f"{vendor}.md").read_text(encoding="utf-8")
    own = [key for key in providers()[vendor].settings_model.model_fields if key not in SourceSettings.model_fields]
    assert [key for key in own if f"| `{key}` |" not in page] == []


def test_a_generator_rewrites_only_the_block_between_its_markers(tmp_path: Path) -> None:
    page = tmp_path / "metrics.md"
    page.write_text(f"# Metrics\n\nby hand\n\n{BEGIN}\nstale\n{END}\n\nby hand too\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "exporter.metrictable", str(page)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert page.read_text(encoding="utf-8") == f"# Metrics\n\nby hand\n\n{metric_tables()}\n\nby hand too\n"


def test_a_generator_refuses_a_page_without_its_markers_in_one_line(tmp_path: Path) -> None:
    page = tmp_path / "configuration.md"
    page.write_text("# Configuration\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "exporter.flagtable", str(page)], capture_output=True, text=True)
    assert (done.returncode, done.stderr.count("\n")) == (1, 1)
    assert done.stderr.startswith(f"{page}: no generated block")
    assert page.read_text(encoding="utf-8") == "# Configuration\n"
