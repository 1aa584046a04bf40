"""docs/adding-a-vendor.md stays true: the files it names exist, the names it tells a new vendor
to use are importable from where it says, and its sketch of a provider compiles."""

from __future__ import annotations

import importlib
import re

import pytest

from tests.conftest import REPO_ROOT

GUIDE = (REPO_ROOT / "docs" / "adding-a-vendor.md").read_text()
USED_FROM = {
    "exporter.providers.base": ("Provider", "raise_unless_ok", "poll_units", "newest_point"),
    "exporter.poll": ("Fetcher", "PollResult", "Sample", "PollError", "InvalidBody", "ShardView"),
    "exporter.families": ("CONCURRENT_VIEWERS",),
    "exporter.settings": ("SourceSettings", "Secret", "PathSegment"),
    "exporter.demo.faults": ("FaultInjector",),
    "exporter.providers": ("register",),
}


EXISTING_FILES = sorted({p for p in re.findall(r"`((?:exporter|tests)/[\w/.]+\.py)`", GUIDE) if "acme" not in p})
"""Every file the guide names, but the example vendor's own."""


@pytest.mark.parametrize("path", EXISTING_FILES)
def test_every_existing_file_the_guide_names_exists(path: str) -> None:
    assert (REPO_ROOT / path).is_file()


@pytest.mark.parametrize(("module", "name"), [(m, n) for m, names in USED_FROM.items() for n in names])
def test_every_name_the_guide_uses_is_where_it_says(module: str, name: str) -> None:
    assert name in GUIDE
    assert hasattr(importlib.import_module(module), name)


def test_the_guide_names_the_vendor_page_where_the_docs_tests_look_for_it() -> None:
    assert "`docs/vendors/acme.md`" in GUIDE
    assert (REPO_ROOT / "docs" / "vendors").is_dir()


def test_the_guides_provider_sketch_compiles() -> None:
    [sketch] = re.findall(r"```python\n(.*?)```", GUIDE, re.S)
    compile(sketch, "adding-a-vendor.md", "exec")
