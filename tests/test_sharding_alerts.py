"""The sharding alert rules load in Prometheus and behave as their promtool tests specify."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import REPO_ROOT

RULES = REPO_ROOT / "prometheus" / "sharding-alerts.yml"
RULE_TESTS = REPO_ROOT / "prometheus" / "tests" / "sharding-alerts.test.yml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool not installed (Debian package prometheus); CI installs it")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)


def test_sharding_rules_pass_promtool_check() -> None:
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 rules found" in done.stdout


def test_sharding_rules_pass_their_promtool_unit_tests() -> None:
    done = promtool("test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
