"""The sharding flags as a user meets them: one-line errors, exit 1, and --check-config figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from exporter import sharding
from exporter.cli import amain, build_parser
from exporter.logs import Redactor
from tests.conftest import exporter_env

CONFIG = """
global:
  total_shards: 3
  shard: {shard}
sources:
  - {{name: a, provider: gcore, api_key: "12$hush-hush", stream_ids: [1, 2, 3]}}
"""


def write(tmp_path: Path, shard: str = "0") -> str:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(shard=shard))
    return str(path)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args], capture_output=True, text=True, env=exporter_env(), timeout=30
    )


def test_check_config_prints_the_per_replica_figures_after_ok(tmp_path: Path) -> None:
    path = write(tmp_path)
    done = run("--check-config", "--config", path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{path}: OK, 1 source",
        "sharded 3 ways: each replica polls about 1/3 of the streams; per-replica budgets "
        "(1/3 of each vendor account's): no rate limits or credit budgets to split",
    ]


def test_check_config_unsharded_prints_only_ok(tmp_path: Path) -> None:
    done = run("--check-config", "--config", write(tmp_path), "--total-shards", "1")
    assert (done.returncode, len(done.stdout.splitlines())) == (0, 1)


def test_check_config_accepts_auto_without_looking_at_this_hosts_name(tmp_path: Path) -> None:
    """The config is checked on a laptop or in CI, not on the pod that will run it."""
    done = run("--check-config", "--config", write(tmp_path, shard="auto"))
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--shard", "3"], "--shard: 3 is out of range for 3 shards ({path}: global: total_shards; valid: 0 to 2)"),
        (["--total-shards", "0"], "--total-shards: must be a whole number of at least 1, got '0'"),
        (["--shard", "x"], "--shard: must be a shard index (0, 1, 2, ...) or auto, got 'x'"),
    ],
)
def test_impossible_flags_are_one_line_errors_with_exit_1(tmp_path: Path, flags: list[str], message: str) -> None:
    path = write(tmp_path)
    for mode in ("--check-config", "--once"):
        done = run(mode, "--config", path, *flags)
        assert done.returncode == 1
        assert done.stderr.splitlines() == [message.format(path=path)]
        assert done.stdout == ""


async def test_auto_on_a_host_without_ordinal_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sharding.socket, "gethostname", lambda: "laptop")
    args = build_parser().parse_args(["--once", "--config", write(tmp_path), "--shard", "auto"])
    assert await amain(args, Redactor()) == 1
    assert capsys.readouterr().err.splitlines() == [
        "--shard auto: host name 'laptop' has no trailing ordinal "
        "(expected a StatefulSet pod name such as livestream-exporter-2)"
    ]


async def test_auto_on_a_pod_past_the_shard_count_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sharding.socket, "gethostname", lambda: "livestream-exporter-3")
    args = build_parser().parse_args(["--once", "--config", write(tmp_path, shard="auto")])
    assert await amain(args, Redactor()) == 1
    assert len(capsys.readouterr().err.splitlines()) == 1
