"""Issue 15, item 8, on a running exporter: a state file that is no regular file never stops the
start. A FIFO would block the read forever and `/dev/zero` would be read without end; each is
said in one line, left in place, and the source starts fresh."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import http_get


def fifo(path: Path) -> None:
    os.mkfifo(path)


def endless_device(path: Path) -> None:
    path.symlink_to("/dev/zero")


@pytest.mark.parametrize("make_state_file", [fifo, endless_device], ids=["fifo", "dev_zero"])
def test_a_state_file_that_is_no_regular_file_is_skipped_with_one_line(
    run_exporter: Any, tmp_path: Path, make_state_file: Callable[[Path], None]
) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    make_state_file(state_dir / "c.json")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"global: {{state_dir: {str(state_dir)!r}}}\nsources:\n"
        "  - {name: c, provider: cloudflare, base_url: 'http://127.0.0.1:9', api_token: cf-token-1,"
        " account_id: acc, app_id: app}\n"
    )
    exporter = run_exporter("--config", str(config))
    exporter.wait_until(lambda: http_get(exporter.base_url + "/-/ready")[0] == 200)
    lines = [line for line in exporter.log().splitlines() if "c.json" in line]
    assert len(lines) == 1
    assert "not a regular file" in lines[0]
