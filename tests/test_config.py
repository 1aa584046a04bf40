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
from exporter.configfile import MAX_SECRET_BYTES
from exporter.providers import providers
from tests.conftest import exporter_env

GOOD_SOURCE = """
  - name: gcore-prod
    provider: gcore
    api_key: "12$abcdefgh"
"""


SECRET_FILES = {
    "latin1.key": "café-key-0123".encode("latin-1"),
    "crlf.key": b"key-0123\r\n4567\n",
}
"""Secret files next to every config the tables write, for rows that name them."""


def write(tmp_path: Path, text: str | bytes) -> str:
    for name, content in SECRET_FILES.items():
        (tmp_path / name).write_bytes(content)
    with open(tmp_path / "big.key", "wb") as sparse:
        sparse.truncate(MAX_SECRET_BYTES + 1)
    path = tmp_path / "config.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def expected_lines(lines: list[str], path: str, tmp_path: Path) -> list[str]:
    known = ", ".join(providers())
    return [
        path + line.removeprefix("config.yaml").replace("{providers}", known).replace("{dir}", str(tmp_path))
        for line in lines
    ]


def errors_of(tmp_path: Path, text: str | bytes) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [line.replace(path, "config.yaml") for line in caught.value.lines]


DEEP_YAML = "sources: " + "[" * 10_000 + "]" * 10_000 + "\n"
ALIAS_BOMB = "".join(
    [f"a0: &a0 [{', '.join(['x'] * 10)}]\n"]
    + [f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 10)}]\n" for level in range(1, 9)]
)
"""A "billion laughs": a few hundred bytes that name 10**9 values once the aliases are expanded."""


def _row_id(row: tuple[str | bytes, list[str]]) -> str:
    return row[1][0].split(": ", 1)[1][:60]


BAD_CONFIGS: list[tuple[str | bytes, list[str]]] = [
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
    # What the file may be: bounded, UTF-8, YAML bounded in depth and in alias expansion.
    ("sources: []\n".encode("utf-16"), ["config.yaml: encoded as UTF-16; save it as UTF-8"]),
    (b"sources:\n  - {name: caf\xe9}\n", ["config.yaml: not UTF-8 text (invalid byte at offset 23)"]),
    ("#" * (1 << 20) + "\n", ["config.yaml: larger than 1 MiB"]),
    (DEEP_YAML, ["config.yaml: line 1: invalid YAML: nested deeper than 32 levels"]),
    (ALIAS_BOMB, ["config.yaml: line 6: invalid YAML: expands to more than 1,000,000 values (aliases?)"]),
    (
        "sources:\n  - {name: a, provider: gcore, api_key_file: /dev/zero}\n",
        ['config.yaml: sources[0] "a": api_key_file: /dev/zero: larger than 64 KiB'],
    ),
    (
        "sources:\n  - {name: a, provider: gcore, api_key_file: big.key}\n",
        ['config.yaml: sources[0] "a": api_key_file: {dir}/big.key: larger than 64 KiB'],
    ),
    (
        "sources:\n  - {name: a, provider: gcore, api_key_file: latin1.key}\n",
        ['config.yaml: sources[0] "a": api_key_file: {dir}/latin1.key: not UTF-8 text (invalid byte at offset 3)'],
    ),
    (
        "sources:\n  - {name: a, provider: gcore, api_key_file: crlf.key}\n",
        [
            'config.yaml: sources[0] "a": api_key_file: {dir}/crlf.key: must not contain control characters such '
            "as a line break or a tab (only a trailing newline is allowed)"
        ],
    ),
    # Values that would break at run time.
    (
        "sources:\n  - {name: a, provider: gcore, api_key: key-0123456, interval: 1ms}\n",
        ['config.yaml: sources[0] "a": interval: must be at least 10s for gcore'],
    ),
    (
        "sources:\n  - {name: a, provider: lls, access_key_id: AK1, access_key_secret: secret-0123, domain: d,"
        " interval: 20s}\n",
        ['config.yaml: sources[0] "a": interval: must be at least 30s for lls'],
    ),
    (
        "sources:\n  - {name: a, provider: cloudflare, api_token: token-0123, account_id: acc, app_id: app,"
        " interval: 30s}\n",
        ['config.yaml: sources[0] "a": interval: must be at least 1m for cloudflare'],
    ),
    (
        "sources:\n  - {name: a, provider: naver, api_key: key-0123456, project_id: c, interval: 5s}\n",
        ['config.yaml: sources[0] "a": interval: must be at least 10s for naver'],
    ),
    (
        "sources:\n  - {name: a, provider: streamscharts, client_id: cid-0123456789, token: tok-0123456789,"
        " channels: [{platform: twitch, channel: shroud}], interval: 59s}\n",
        ['config.yaml: sources[0] "a": interval: must be at least 1m for streamscharts'],
    ),
    (
        "sources:\n  - {name: a, provider: gcore, api_key: key-0123456, base_url: 'http://127.0.0.1:9', interval: 1ms}\n",
        ['config.yaml: sources[0] "a": interval: must be at least 100ms on loopback'],
    ),
    (
        "sources:\n  - {name: a, provider: gcore, api_key: key-0123456, interval: 100000000d}\n",
        ['config.yaml: sources[0] "a": interval: must be at most 7d'],
    ),
    (
        "sources:\n  - {name: a, provider: gcore, api_key: key-0123456, interval: 25h}\n",
        ['config.yaml: sources[0] "a": interval: must be at most 1d'],
    ),
    (
        "global: {total_shards: 1000000000000000000000000000000}\nsources:\n"
        "  - {name: a, provider: gcore, api_key: key-0123456}\n",
        ["config.yaml: global: total_shards: must be at most 100"],
    ),
    (
        "global: {shard: 4, total_shards: 4}\nsources:\n  - {name: a, provider: gcore, api_key: key-0123456}\n",
        ["config.yaml: global: shard: 4 is out of range for 4 shards (total_shards; valid: 0 to 3)"],
    ),
    (
        "global: {shard: 1}\nsources:\n  - {name: a, provider: gcore, api_key: key-0123456}\n",
        ["config.yaml: global: shard: 1 is out of range for 1 shards (total_shards; valid: 0 to 0)"],
    ),
    (
        f"sources:\n  - {{name: {'a' * 65}, provider: gcore, api_key: key-0123456}}\n",
        [
            f'config.yaml: sources[0] "{"a" * 65}": name: must be at most 64 characters (it names the source\'s state file)'
        ],
    ),
    (
        'sources:\n  - {name: a, provider: gcore, api_key: "key-0123\\r\\n456"}\n',
        ['config.yaml: sources[0] "a": api_key: must not contain control characters such as a line break or a tab'],
    ),
    (
        'sources:\n  - {name: a, provider: naver, api_key: key-0123456, project_id: "company\\n1"}\n',
        ['config.yaml: sources[0] "a": project_id: must not contain control characters such as a line break or a tab'],
    ),
    (
        "sources:\n  - {name: a, provider: lls, access_key_id: AK1, access_key_secret: secret-0123, domain: d,"
        ' fzone: "SG\\r\\nX-Injected: 1"}\n',
        ['config.yaml: sources[0] "a": fzone: must not contain control characters such as a line break or a tab'],
    ),
    (
        'sources:\n  - {name: "a\\nb", provider: gcore, api_key: key-0123456, labels: {"te\\tam": x}}\n',
        [
            'config.yaml: sources[0] "a\\nb": name: must not contain control characters such as a line break or a tab',
            'config.yaml: sources[0] "a\\nb": labels.te\\tam: must not contain control characters such as a line break'
            " or a tab",
        ],
    ),
    (
        'sources:\n  - {name: a, provider: gcore, api_key: "key-\\ud800-0123"}\n',
        ['config.yaml: sources[0] "a": api_key: must not contain control characters such as a line break or a tab'],
    ),
    (
        "sources:\n  - {name: a, provider: gcore, api_key: abc}\n",
        [
            'config.yaml: sources[0] "a": api_key: must be at least 8 characters (a shorter secret cannot be kept out of logs)'
        ],
    ),
    # One rule for types: nothing is converted between kinds.
    (
        "sources:\n  - {name: a, provider: streamscharts, client_id: cid-0123456789, token: tok-0123456789,"
        ' channels: [{platform: twitch, channel: shroud}], testing_mode: "yes"}\n',
        ['config.yaml: sources[0] "a": testing_mode: must be a valid boolean'],
    ),
    (
        "sources:\n  - {name: a, provider: streamscharts, client_id: cid-0123456789, token: tok-0123456789,"
        ' channels: [{platform: twitch, channel: shroud}], credits_budget: "100"}\n',
        ['config.yaml: sources[0] "a": credits_budget: must be a valid number'],
    ),
    (
        'sources:\n  - {name: a, provider: gcore, api_key: key-0123456, stream_ids: ["1", 2.0]}\n',
        [
            'config.yaml: sources[0] "a": stream_ids[0]: must be a valid integer',
            'config.yaml: sources[0] "a": stream_ids[1]: must be a valid integer',
        ],
    ),
    (
        'global: {total_shards: "4"}\nsources:\n  - {name: a, provider: gcore, api_key: key-0123456}\n',
        ["config.yaml: global: total_shards: must be a whole number of at least 1"],
    ),
    (
        "global: {max_response_bytes: lots}\nsources:\n  - {name: a, provider: gcore, api_key: key-0123456}\n",
        ["config.yaml: global: max_response_bytes: must be a size such as 64MiB, or a whole number of bytes"],
    ),
    (
        "global: {max_response_bytes: 1.5}\nsources:\n  - {name: a, provider: gcore, api_key: key-0123456}\n",
        ["config.yaml: global: max_response_bytes: must be a size such as 64MiB, or a whole number of bytes"],
    ),
    (
        "global: {max_response_bytes: 1000}\nsources:\n  - {name: a, provider: gcore, api_key: key-0123456}\n",
        ["config.yaml: global: max_response_bytes: must be from 1KiB to 1GiB"],
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_CONFIGS, ids=[_row_id(row) for row in BAD_CONFIGS])
def test_bad_config_reports_exact_lines(tmp_path: Path, text: str | bytes, expected: list[str]) -> None:
    assert errors_of(tmp_path, text) == expected_lines(expected, "config.yaml", tmp_path)


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


def test_the_bad_config_matrix_has_at_least_25_rows() -> None:
    assert len(BAD_CONFIGS) >= 25


@pytest.mark.parametrize("index", range(len(BAD_CONFIGS)), ids=[_row_id(row) for row in BAD_CONFIGS])
def test_check_config_exits_1_with_the_exact_line(cli_main: Any, tmp_path: Path, index: int) -> None:
    path = write(tmp_path, BAD_CONFIGS[index][0])
    expected = expected_lines(BAD_CONFIGS[index][1], path, tmp_path)
    assert cli_main("--check-config", "--config", path) == (1, "", "\n".join(expected) + "\n")


@pytest.mark.parametrize(
    "row",
    ["encoded as UTF-16", "nested deeper than", "expands to more than", "/dev/zero: larger than"],
)
def test_check_config_process_refuses_hostile_files_with_one_line_and_no_traceback(tmp_path: Path, row: str) -> None:
    text, [line] = next((text, lines) for text, lines in BAD_CONFIGS if row in lines[0])
    path = write(tmp_path, text)
    done = subprocess.run(
        [sys.executable, "-m", "exporter", "--check-config", "--config", path],
        capture_output=True,
        text=True,
        env=exporter_env(),
        timeout=60,
    )
    assert (done.returncode, done.stdout, done.stderr.splitlines()) == (1, "", expected_lines([line], path, tmp_path))
