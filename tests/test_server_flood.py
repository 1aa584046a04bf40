"""Connection floods against the exporter process under a low open-files limit: a fresh scrape
still answers and the log stays quiet."""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import exporter_env, free_port, http_get

SCRAPE_WITHIN = 30.0


class LimitedExporter:
    """`python -m exporter --demo` whose open-files limit (soft and hard) is `open_files`."""

    def __init__(self, tmp_path: Path, open_files: int) -> None:
        self.port = free_port()
        self.log_path = tmp_path / "exporter.log"
        self._log = self.log_path.open("wb")

        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "exporter", "--demo", f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=exporter_env(),
            cwd=tmp_path,
            preexec_fn=limit,
        )

    def get(self, path: str) -> int:
        return http_get(f"http://127.0.0.1:{self.port}{path}", timeout=5)[0]

    def eventually(self, path: str) -> int:
        """The first answer to `path` within the bound; 0 if none came."""
        deadline = time.monotonic() + SCRAPE_WITHIN
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log()
            try:
                return self.get(path)
            except OSError:
                time.sleep(0.1)
        return 0

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture
def limited_exporter(tmp_path: Path) -> Iterator[Callable[[int], LimitedExporter]]:
    started: list[LimitedExporter] = []

    def start(open_files: int) -> LimitedExporter:
        exporter = LimitedExporter(tmp_path, open_files)
        started.append(exporter)
        assert exporter.eventually("/-/healthy") == 200
        return exporter

    yield start
    for exporter in started:
        exporter.stop()


@pytest.fixture
def idle_connections() -> Iterator[Callable[[int, int], list[socket.socket]]]:
    """Opens `count` connections that never send anything (non-blocking connects, so the kernel
    queue filling up cannot hang the test)."""
    opened: list[socket.socket] = []

    def open_idle(port: int, count: int) -> list[socket.socket]:
        for _ in range(count):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            opened.append(sock)
        return opened

    yield open_idle
    for sock in opened:
        sock.close()


def log_lines_after_listening(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(index for index, line in enumerate(lines) if "msg=listening" in line)
    return lines[start + 1 :]


@pytest.mark.skipif(resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 1024, reason="the test opens 600 sockets")
def test_a_fresh_scrape_answers_while_more_idle_connections_are_open_than_files_allowed(
    limited_exporter: Callable[[int], LimitedExporter], idle_connections: Callable[[int, int], list[socket.socket]]
) -> None:
    exporter = limited_exporter(256)
    idle_connections(exporter.port, 600)
    assert exporter.eventually("/metrics") == 200
    assert exporter.get("/metrics") == 200
    assert "Traceback" not in exporter.log()


def test_the_log_stays_quiet_when_accept_runs_out_of_file_descriptors(
    limited_exporter: Callable[[int], LimitedExporter], idle_connections: Callable[[int, int], list[socket.socket]]
) -> None:
    exporter = limited_exporter(64)
    started = time.monotonic()
    idle_connections(exporter.port, 300)
    assert exporter.eventually("/metrics") == 200
    minutes = 1 + int((time.monotonic() - started) // 60)
    out_of_files = [line for line in log_lines_after_listening(exporter.log()) if "out of file descriptors" in line]
    assert 1 <= len(out_of_files) <= minutes
    assert not [line for line in log_lines_after_listening(exporter.log()) if "logger=asyncio" in line]
