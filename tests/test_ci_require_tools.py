"""CI goes red, not green-with-skips, when the real tools are missing (LIVESTREAM_REQUIRE_TOOLS=1)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT, REQUIRE_TOOLS_ENV, exporter_env

PROMTOOL_TEST = "tests/test_alert_rules.py::test_promtool_check_rules_passes_with_its_lint"


def pytest_without_tools(**env: str) -> subprocess.CompletedProcess[str]:
    """That test run with a PATH holding only Python: promtool is not found."""
    bare = exporter_env(PATH=str(Path(sys.executable).parent), **env)
    if REQUIRE_TOOLS_ENV not in env:
        bare.pop(REQUIRE_TOOLS_ENV, None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", PROMTOOL_TEST],
        capture_output=True,
        text=True,
        timeout=120,
        env=bare,
        cwd=REPO_ROOT,
    )


def test_a_missing_tool_fails_its_test_when_tools_are_required() -> None:
    done = pytest_without_tools(**{REQUIRE_TOOLS_ENV: "1"})
    assert done.returncode == 1, done.stdout
    assert "1 failed" in done.stdout and "promtool not installed" in done.stdout


def test_a_missing_tool_skips_its_test_on_a_developer_machine() -> None:
    done = pytest_without_tools()
    assert done.returncode == 0, done.stdout
    assert "1 skipped" in done.stdout and "promtool not installed" in done.stdout


def test_ci_sets_the_variable_before_running_the_tests() -> None:
    lines = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    exported = lines.index(f"export {REQUIRE_TOOLS_ENV}=1")
    assert exported < len(lines) - 2, "it must come before the README's test command"


def test_ci_without_root_and_without_the_tools_fails_loudly(tmp_path: Path) -> None:
    """`.ci/run` on a PATH with none of the tools, as a user `id -u` says is not root: it must
    stop with one error line before installing or running anything."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "id").write_text("#!/bin/sh\necho 1000\n")
    (bin_dir / "id").chmod(0o755)
    for tool in ("dirname", "tr", "python3"):
        found = shutil.which(tool)
        assert found is not None, tool
        (bin_dir / tool).symlink_to(found)
    done = subprocess.run(
        ["/bin/bash", str(REPO_ROOT / ".ci" / "run")],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
    )
    assert done.returncode == 1, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: CI needs prometheus promtool prometheus-alertmanager amtool chromium")
    assert "is not root" in line and "chromium" in line
    assert done.stdout == ""
