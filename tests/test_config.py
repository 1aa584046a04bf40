"""Config: every problem on its own line naming the file, the source and the key."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter.cli import main
from exporter.config import ConfigError, load_config
from exporter.providers import providers
from tests.conftest import exporter_env

GOOD_SOURCE = """
  - name: gcore-prod
    provider: gcore
    api_key: "12$abcdefgh"
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


def errors_of(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [line.replace(path, "config.yaml") for line in caught.value.lines]


BAD_CONFIGS = [
    (
        "sources:\n  - {name: a, provider: gcore, api_key: key-0123456}\n  - {name: b, provider: gcore, api_key: key-0123456}\n"
        "  - {name: gcore-prod, provider: gcore, api_key: key-0123456, granularity: 2m}\n",
        ['config.yaml: sources[2] "gcore-prod": granularity: must be one of 1m, 5m, 15m, 1h, 1d'],
    ),
    (
        "sources:\n  - {name: a, provider: gcore, api_key: key-0123456, granularty: 1m}\n",
        ['config.yaml: sources[0] "a": granularty: unknown key'],
    ),
    (
        "sources:\n  - {name: a, provider: gcore}\n",
        ['config.yaml: sources[0] "a": api_key: required key is missing'],
    ),
    (
        "sources:\n  - {name: a, provider: youtube, api_key: key-0123456}\n",
        ["config.yaml: sources[0] \"a\": provider: unknown provider 'youtube' (one of {providers})"],
    ),
    (
        "sources:\n  - {name: a, provider: gcore, api_key: key-0123456}\n  - {name: a, provider: gcore, api_key: key-0123456}\n",
        ['config.yaml: sources[1] "a": name: duplicate of sources[0]'],
    ),
    (
        "sources:\n  - {name: a, provider: gcore, api_key: key-0123456, interval: 10}\n",
        ['config.yaml: sources[0] "a": interval: must be a duration such as 500ms, 10s, 5m or 1h'],
    ),
    (
        "global:\n  stale_after: soon\nsources:\n  - {name: a, provider: gcore, api_key: key-0123456}\n",
        ["config.yaml: global: stale_after: must be a duration such as 500ms, 10s, 5m or 1h"],
    ),
    (
        "sources:\n  - {name: a, provider: gcore, api_key: '${LSE_TEST_UNSET_VARIABLE}'}\n",
        ['config.yaml: sources[0] "a": api_key: environment variable LSE_TEST_UNSET_VARIABLE is not set'],
    ),
    ("sources: []\n", ["config.yaml: sources: at least one source is required (or run with --demo)"]),
    (
        "sources:\n  - {name: Bad Name, provider: gcore, api_key: key-0123456}\n",
        ['config.yaml: sources[0] "Bad Name": name: must match [a-z0-9_-]+ (it becomes the `source` label)'],
    ),
    (
        "sources:\n  - {name: a, provider: gcore, api_key: key-0123456, base_url: 'ftp://x'}\n",
        ['config.yaml: sources[0] "a": base_url: must be an http:// or https:// URL'],
    ),
    (
        "sourcez: []\nsources:\n  - {name: a, provider: gcore, api_key: key-0123456}\n",
        ["config.yaml: sourcez: unknown key (expected global, sources)"],
    ),
    (
        "global: {timeot: 10s}\nsources:\n  - {name: a, provider: gcore, api_key: key-0123456}\n",
        ["config.yaml: global: timeot: unknown key"],
    ),
    (
        "global: {timeout: 0s}\nsources:\n  - {name: a, provider: gcore, api_key: key-0123456}\n",
        ["config.yaml: global: timeout: must be longer than 0s"],
    ),
    (
        "global: [timeout]\nsources:\n  - {name: a, provider: gcore, api_key: key-0123456}\n",
        ["config.yaml: global: must be a mapping of keys"],
    ),
    (
        "global: {state_dir: '${LSE_TEST_UNSET_VARIABLE}'}\nsources:\n  - {name: a, provider: gcore, api_key: key-0123456}\n",
        ["config.yaml: global: state_dir: environment variable LSE_TEST_UNSET_VARIABLE is not set"],
    ),
    (
        "global: {timeout: 10s, timeout: 5s}\nsources:\n  - {name: a, provider: gcore, api_key: key-0123456}\n",
        ["config.yaml: line 1: invalid YAML: duplicate key 'timeout'"],
    ),
    ("sources: {a: {provider: gcore}}\n", ["config.yaml: sources: must be a list of sources"]),
    ("sources: [gcore]\n", ["config.yaml: sources[0]: must be a mapping of keys"]),
    ("# nothing yet\n", ["config.yaml: sources: at least one source is required (or run with --demo)"]),
    ("- name: a\n  provider: gcore\n", ["config.yaml: the top level must be a mapping with `global` and `sources`"]),
    (
        "sources:\n  - {name: a, provider: gcore\n",
        ["config.yaml: line 3: invalid YAML: expected ',' or '}', but got '<stream end>'"],
    ),
    (
        "sources:\n  - name: a\n    provider: gcore\n    api_key: key-0123456\n    api_key: j\n",
        ["config.yaml: line 5: invalid YAML: duplicate key 'api_key'"],
    ),
    (
        "sources:\n  - {name: a, api_key: key-0123456}\n",
        ['config.yaml: sources[0] "a": provider: required key is missing (one of {providers})'],
    ),
    (
        "sources:\n  - {name: a, provider: [gcore], api_key: key-0123456}\n",
        ['config.yaml: sources[0] "a": provider: must be a string (one of {providers})'],
    ),
    (
        "sources:\n  - {provider: gcore, api_key: key-0123456}\n",
        ["config.yaml: sources[0]: name: required key is missing"],
    ),
    (
        "sources:\n  - {name: 7, provider: gcore, api_key: key-0123456}\n",
        ["config.yaml: sources[0]: name: must be a valid string"],
    ),
    (
        "sources:\n  - {name: a, provider: gcore, api_key: ''}\n",
        ['config.yaml: sources[0] "a": api_key: must not be empty'],
    ),
    (
        "sources:\n  - {name: a, provider: gcore, api_key: [k]}\n",
        ['config.yaml: sources[0] "a": api_key: must be a valid string'],
    ),
    (
        "sources:\n  - {name: a, provider: gcore, api_key: key-0123456, api_key_file: key}\n",
        ['config.yaml: sources[0] "a": api_key_file: set either api_key or api_key_file, not both'],
    ),
    (
        "sources:\n  - {name: a, provider: gcore, api_key_file: /}\n",
        ['config.yaml: sources[0] "a": api_key_file: cannot read /: Is a directory'],
    ),
    (
        "sources:\n  - {name: a, provider: gcore, api_key_file: 5}\n",
        ['config.yaml: sources[0] "a": api_key_file: must be a file path'],
    ),
    (
        "sources:\n  - {name: a, provider: gcore, api_key: key-0123456, granularity: 5}\n",
        ['config.yaml: sources[0] "a": granularity: must be one of 1m, 5m, 15m, 1h, 1d'],
    ),
    (
        "sources:\n  - {name: a, provider: gcore, api_key: key-0123456, stream_ids: [abc]}\n",
        ['config.yaml: sources[0] "a": stream_ids[0]: must be a valid integer'],
    ),
    (
        "sources:\n  - {name: a, provider: gcore, api_key: key-0123456, stream_ids: 42}\n",
        ['config.yaml: sources[0] "a": stream_ids: must be a valid list'],
    ),
    (
        "sources:\n  - {name: a, provider: gcore, api_key: key-0123456, client_user_id: me}\n",
        ['config.yaml: sources[0] "a": client_user_id: must be a valid integer'],
    ),
    (
        "sources:\n  - {name: a, provider: gcore, api_key: key-0123456, interval: 0s}\n",
        ['config.yaml: sources[0] "a": interval: must be longer than 0s'],
    ),
    (
        "sources:\n  - {name: a, provider: gcore, api_key: key-0123456, interval: -5s}\n",
        ['config.yaml: sources[0] "a": interval: must be a duration such as 500ms, 10s, 5m or 1h'],
    ),
    (
        "sources:\n  - {name: a, provider: gcore, api_key: key-0123456, base_url: 'http://'}\n",
        ['config.yaml: sources[0] "a": base_url: must be an http:// or https:// URL'],
    ),
    (
        "sources:\n  - {name: a, provider: gcore, api_key: key-0123456, base_url: 'https://user:pw@api.gcore.com'}\n",
        ['config.yaml: sources[0] "a": base_url: must not carry credentials (they would not be treated as secrets)'],
    ),
    (
        "sources:\n  - {name: a, provider: gcore, api_key: key-0123456, labels: [team]}\n",
        ['config.yaml: sources[0] "a": labels: must be a mapping of keys'],
    ),
    (
        "sources:\n  - {name: a, provider: gcore, api_key: key-0123456, labels: {team-name: x}}\n",
        ["config.yaml: sources[0] \"a\": labels.team-name: 'team-name' is not a valid Prometheus label name"],
    ),
    (
        "sources:\n  - {name: a, provider: gcore, api_key: key-0123456, labels: {source: x}}\n",
        ["config.yaml: sources[0] \"a\": labels.source: 'source' is set by the exporter itself"],
    ),
    (
        "sources:\n  - {name: a, provider: gcore, api_key: key-0123456, labels: {team: [x]}}\n",
        ['config.yaml: sources[0] "a": labels.team: must be a valid string'],
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_CONFIGS, ids=[e[0][0] for e in BAD_CONFIGS])
def test_bad_config_reports_exact_lines(tmp_path: Path, text: str, expected: list[str]) -> None:
    known = ", ".join(providers())
    assert errors_of(tmp_path, text) == [line.replace("{providers}", known) for line in expected]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    lines = errors_of(
        tmp_path,
        "global: {timeout: x}\nsources:\n  - {name: a, provider: gcore}\n  - {name: b, provider: gcore, api_key: key-0123456, granularity: 7}\n",
    )
    assert len(lines) == 3


def test_secret_file_is_read_and_trailing_newline_stripped(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("12$fromfile\n")
    config = load_config(write(tmp_path, "sources:\n  - {name: a, provider: gcore, api_key_file: key}\n"))
    assert config.sources[0].api_key.get_secret_value() == "12$fromfile"


def test_unreadable_secret_file_names_key_and_path(tmp_path: Path) -> None:
    lines = errors_of(tmp_path, "sources:\n  - {name: a, provider: gcore, api_key_file: /nonexistent/key}\n")
    assert lines == [
        'config.yaml: sources[0] "a": api_key_file: cannot read /nonexistent/key: No such file or directory'
    ]


def test_env_variables_are_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LSE_TEST_KEY", "12$env-key")
    config = load_config(write(tmp_path, "sources:\n  - {name: a, provider: gcore, api_key: '${LSE_TEST_KEY}'}\n"))
    assert config.sources[0].api_key.get_secret_value() == "12$env-key"


def test_durations_accept_prometheus_style(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "global: {timeout: 500ms, stale_after: 1m30s}\nsources:" + GOOD_SOURCE))
    assert (config.global_.timeout, config.global_.stale_after) == (0.5, 90.0)


def test_check_config_exits_1_and_prints_each_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "sources:\n  - {name: a, provider: gcore, api_key: '12$hush-hush', granularity: 2m}\n")
    done = subprocess.run(
        [sys.executable, "-m", "exporter", "--check-config", "--config", path],
        capture_output=True,
        text=True,
        env=exporter_env(),
        timeout=30,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == f'{path}: sources[0] "a": granularity: must be one of 1m, 5m, 15m, 1h, 1d'
    assert "12$hush-hush" not in done.stdout + done.stderr


def test_check_config_exits_0_on_a_valid_config(tmp_path: Path) -> None:
    path = write(tmp_path, "sources:" + GOOD_SOURCE)
    done = subprocess.run(
        [sys.executable, "-m", "exporter", "--check-config", "--config", path],
        capture_output=True,
        text=True,
        env=exporter_env(),
        timeout=30,
    )
    assert (done.returncode, done.stdout.strip()) == (0, f"{path}: OK, 1 source")


@pytest.fixture
def cli_main(capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """`exporter.cli.main` (what `python -m exporter` exits with) run in this process, returning
    (exit code, stdout, stderr); the root logger it configures is put back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    yield run
    root.handlers[:] = handlers
    root.setLevel(level)


def _row_id(row: tuple[str, list[str]]) -> str:
    return row[1][0].split(": ", 1)[1][:60]


def test_the_bad_config_matrix_has_at_least_25_rows() -> None:
    assert len(BAD_CONFIGS) >= 25


@pytest.mark.parametrize("index", range(len(BAD_CONFIGS)), ids=[_row_id(row) for row in BAD_CONFIGS])
def test_check_config_exits_1_with_the_exact_line(cli_main: Any, tmp_path: Path, index: int) -> None:
    path = write(tmp_path, BAD_CONFIGS[index][0])
    known = ", ".join(providers())
    expected = [path + line.removeprefix("config.yaml").replace("{providers}", known) for line in BAD_CONFIGS[index][1]]
    assert cli_main("--check-config", "--config", path) == (1, "", "\n".join(expected) + "\n")
