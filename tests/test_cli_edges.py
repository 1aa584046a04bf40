"""Command-line edges a first-time user meets: --help, --check-config, --once."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from exporter.cli import build_parser
from exporter.providers import providers
from tests.conftest import REPO_ROOT, exporter_env, free_port

EXAMPLE = REPO_ROOT / "config.example.yaml"


def run_exporter_once(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=exporter_env(**env),
        cwd=cwd,
    )


def test_help_says_each_default_once_and_never_none() -> None:
    help_text = build_parser().format_help()
    assert "(default: None)" not in help_text
    flat = " ".join(help_text.split())
    blocks = re.split(r" (?=--[\w.-]+ )", flat)
    for block in blocks:
        assert block.count("default:") <= 1, block
    assert "(default: global.total_shards, else 1)" in flat


def test_example_config_has_one_source_of_every_vendor() -> None:
    config = yaml.safe_load(EXAMPLE.read_text())
    assert sorted(source["provider"] for source in config["sources"]) == sorted(providers())


def test_example_config_passes_check_config_with_dummy_secrets(tmp_path: Path) -> None:
    variables = sorted(set(re.findall(r"\$\{(\w+)\}", EXAMPLE.read_text())))
    done = run_exporter_once(
        "--check-config", "--config", str(EXAMPLE), cwd=tmp_path, **{name: f"dummy-{name}" for name in variables}
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{EXAMPLE}: OK, {len(providers())} sources"


def test_check_config_with_demo_checks_the_demo_sources_without_starting_a_simulator(tmp_path: Path) -> None:
    done = run_exporter_once("--check-config", "--demo", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("<demo>: OK")
    assert "demo simulator" not in done.stderr


def test_once_does_not_announce_a_retry_it_will_never_make(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "sources:\n"
        "  - name: gcore-down\n"
        "    provider: gcore\n"
        "    api_key: key-0123456\n"
        f"    base_url: http://127.0.0.1:{free_port()}\n"
    )
    done = run_exporter_once("--once", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 1
    assert "poll failed" in done.stderr and "gcore-down" in done.stderr
    assert "retry_in" not in done.stderr and "retry_why" not in done.stderr
