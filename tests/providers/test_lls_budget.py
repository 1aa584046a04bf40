"""LLS's shared budget per access key: 100 requests per minute and 1000 per hour.

`--check-config` rejects a config that cannot fit, naming the sum and an interval that would;
sources without an `interval` get a default that fits whatever else shares their key.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from exporter.config import ConfigError, parse_config
from exporter.metrics import AudienceStore, ExporterMetrics
from exporter.providers.lls import Lls
from exporter.scheduler import Scheduler
from tests.conftest import exporter_env


def lls_source(name: str, streams: int, key: str = "AK1", **extra: object) -> dict:
    return {
        "name": name,
        "provider": "lls",
        "access_key_id": key,
        "access_key_secret": "s3cret-value",
        "domain": "live.example.com",
        "streams": [f"s{index}" for index in range(streams)],
        **extra,
    }


def problems(*sources: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config({"sources": list(sources)}, "config.yaml", Path("."))
    return caught.value.lines


def defaults(*sources: dict) -> dict[str, float]:
    config = parse_config({"sources": list(sources)}, "config.yaml", Path("."))
    return Lls.default_intervals(config.sources)


def test_forty_streams_every_minute_are_rejected_naming_the_sum_and_an_interval_that_fits() -> None:
    assert problems(lls_source("a", 40, interval="60s")) == [
        'config.yaml: sources[0] "a": interval: 40 requests every 1m make 2400 per hour, over LLS\'s limit '
        "of 1000 per hour per access key; an interval of 144s or longer fits"
    ]


def test_sources_sharing_a_key_are_summed_and_named() -> None:
    assert problems(lls_source("a", 20, interval="1m"), lls_source("b", 10, protocol=["ll-hls", "hls/dash"])) == [
        'config.yaml: sources[0] "a": interval: 20 requests every 1m + 20 requests every 1m make 2400 per hour '
        "(sources a, b share this access_key_id), over LLS's limit of 1000 per hour per access key; "
        "polling all of them every 144s or longer fits"
    ]


def test_the_minute_limit_is_checked_too() -> None:
    [line] = problems(lls_source("a", 200, interval="30s"))
    assert "make 400 per minute, over LLS's limit of 100 per minute per access key" in line
    assert line.endswith("an interval of 12m or longer fits")


def test_exactly_one_thousand_per_hour_fits() -> None:
    assert defaults(lls_source("a", 10, interval="36s")) == {}


def test_sources_on_different_keys_have_separate_budgets() -> None:
    assert defaults(lls_source("a", 16, interval="1m"), lls_source("b", 16, key="AK2", interval="1m")) == {}


def test_without_an_interval_the_default_is_one_minute_when_that_fits() -> None:
    assert defaults(lls_source("a", 16)) == {"a": 60.0}


def test_without_an_interval_the_default_grows_to_fit_the_hourly_budget() -> None:
    assert defaults(lls_source("a", 40)) == {"a": 144.0}


def test_the_default_fits_what_explicit_intervals_on_the_same_key_leave() -> None:
    chosen = defaults(lls_source("a", 10, interval="1m"), lls_source("b", 8), lls_source("c", 2))
    assert chosen == {"b": 90.0, "c": 90.0}
    hourly = 10 * 3600 / 60 + (8 + 2) * 3600 / chosen["b"]
    assert hourly == 1000


async def test_the_scheduler_polls_with_the_shared_default(tmp_path: Path) -> None:
    config = parse_config(
        {"global": {"state_dir": str(tmp_path)}, "sources": [lls_source("a", 40), lls_source("b", 1, key="AK2")]},
        "config.yaml",
        tmp_path,
    )
    scheduler = Scheduler(config, AudienceStore([], 300), ExporterMetrics("t", "3"))
    assert (scheduler.sources["a"].interval, scheduler.sources["b"].interval) == (144.0, 60.0)


def test_check_config_prints_the_budget_problem_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "sources:\n  - name: a\n    provider: lls\n    access_key_id: AK1\n    access_key_secret: s3cret-value\n"
        "    domain: live.example.com\n    streams: [" + ", ".join(f"s{i}" for i in range(40)) + "]\n"
        "    interval: 60s\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "exporter", "--check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        env=exporter_env(),
        timeout=30,
    )
    assert done.returncode == 1
    assert "2400 per hour" in done.stderr and "144s or longer fits" in done.stderr
    assert "s3cret-value" not in done.stdout + done.stderr
