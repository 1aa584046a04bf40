"""The code stays ruff-clean and ruff-formatted: CI fails on a lint error or an unformatted file,
not only on a failing test. ruff is pinned in the test extras, so every machine judges alike."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib

import pytest

from tests.conftest import REPO_ROOT


def ruff(*arguments: str) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]' brings it)")
    return subprocess.run(
        [sys.executable, "-m", "ruff", *arguments], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )


def test_ruff_finds_nothing() -> None:
    done = ruff("check", ".")
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_file_is_formatted_as_ruff_format_writes_it() -> None:
    done = ruff("format", "--check", "exporter", "tests", "bench")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_ruff_that_runs_is_the_one_pinned_in_the_test_extras() -> None:
    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    [pin] = [requirement for requirement in extras if requirement.startswith("ruff")]
    assert pin.startswith("ruff=="), f"{pin}: ruff must be pinned to one version"
    assert ruff("--version").stdout.split() == ["ruff", pin.removeprefix("ruff==")]
