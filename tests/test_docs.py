"""The README stays true to the program: every flag of --help is in its flag table."""

from __future__ import annotations

import argparse

from exporter.cli import build_parser
from tests.conftest import REPO_ROOT


def test_every_flag_is_documented_with_its_default() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    for action in build_parser()._actions:
        flag = next((s for s in action.option_strings if s.startswith("--")), None)
        if flag in (None, "--help"):
            continue
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{flag}")), None)
        assert row is not None, f"{flag} missing from the README's flag table"
        if isinstance(action.default, str) and action.default != argparse.SUPPRESS and flag != "--config":
            assert f"`{action.default}`" in row, f"{flag}: README does not show default {action.default}"


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    command = "pip install -e '.[test]' && python -m pytest"
    assert command in readme
    assert ci.strip().splitlines()[-1] == command
