"""The README stays true to the program: its flag table is --help's, its commands are CI's."""

from __future__ import annotations

import argparse
import re
import tomllib

from exporter.cli import build_parser
from exporter.flagtable import flag_table
from tests.conftest import REPO_ROOT

README = REPO_ROOT / "README.md"


def code_block_after(text: str, marker: str) -> list[str]:
    """The lines of the first fenced code block after `marker`."""
    rest = text[text.index(marker) :]
    match = re.search(r"```\w*\n(.*?)```", rest, re.S)
    assert match is not None, f"no code block after {marker!r}"
    return match[1].strip().splitlines()


def test_every_flag_is_documented_with_its_default() -> None:
    readme = README.read_text()
    for action in build_parser()._actions:
        flag = next((s for s in action.option_strings if s.startswith("--")), None)
        if flag in (None, "--help"):
            continue
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{flag}")), None)
        assert row is not None, f"{flag} missing from the README's flag table"
        if isinstance(action.default, str) and action.default != argparse.SUPPRESS and flag != "--config":
            assert f"`{action.default}`" in row, f"{flag}: README does not show default {action.default}"


def test_readme_flag_table_is_the_one_generated_from_help() -> None:
    assert flag_table() in README.read_text(), "regenerate it: python -m exporter.flagtable README.md"


def test_quick_start_is_two_commands_in_a_virtualenv() -> None:
    commands = code_block_after(README.read_text(), "## Quick start")
    assert commands == ["python3 -m venv .venv && .venv/bin/pip install .", ".venv/bin/livestream-exporter --demo"]


def test_readme_test_command_is_exactly_what_ci_runs_last() -> None:
    commands = code_block_after(README.read_text(), "Run the tests")
    assert len(commands) == 2 and commands[0].startswith("python3 -m venv .venv && ")
    ci = (REPO_ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-len(commands) :] == commands


def test_ci_never_stops_a_process_by_name() -> None:
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert not re.search(r"\b(pkill|killall|kill)\b", ci)


def test_project_license_is_an_spdx_string() -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "Apache-2.0"
    setuptools = next(r for r in pyproject["build-system"]["requires"] if r.startswith("setuptools"))
    assert setuptools == "setuptools>=77", "setuptools reads the SPDX form from 77 on"
