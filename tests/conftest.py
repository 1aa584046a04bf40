"""Shared test plumbing: fixtures on disk, loopback servers, and the exporter as a real process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
REQUIRE_TOOLS_ENV = "LIVESTREAM_REQUIRE_TOOLS"
"""Set to 1 (CI does): a test skipped because a tool (promtool, prometheus, chromium...) is "not
installed" fails instead, so a CI without them goes red rather than green with nothing tested."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.skipped and os.environ.get(REQUIRE_TOOLS_ENV) == "1":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if "not installed" in reason:
            report.outcome = "failed"
            report.longrepr = f"{reason} ({REQUIRE_TOOLS_ENV}=1: a missing tool is a failure)"
    return report


def fixture_json(relative: str) -> Any:
    return json.loads((FIXTURES / relative).read_text(encoding="utf-8"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def exporter_env(**extra: str) -> dict[str, str]:
    """The environment for a child `python -m exporter` that imports this checkout's code."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def http_get(
    url: str, headers: dict[str, str] | None = None, timeout: float = 5.0
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def peak_rss_mib(pid: int) -> float:
    """A process's peak resident memory (VmHWM) in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


class ExporterProcess:
    """`python -m exporter ...` on a free loopback port, with its log captured."""

    def __init__(self, args: list[str], tmp_path: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"exporter-{self.port}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "exporter", f"--web.listen-address=127.0.0.1:{self.port}", *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env or exporter_env(),
            cwd=tmp_path,
        )

    def wait_until(self, predicate: Any, timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"exporter exited with {self.proc.returncode}:\n{self.log()}")
            try:
                last = predicate()
            except OSError:
                last = None
            if last:
                return last
            time.sleep(0.1)
        raise AssertionError(f"condition not met within {timeout}s; log:\n{self.log()}")

    def metrics(self) -> str:
        return http_get(f"{self.base_url}/metrics")[2].decode()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def run_exporter(tmp_path: Path) -> Iterator[Any]:
    started: list[ExporterProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> ExporterProcess:
        process = ExporterProcess(list(args), tmp_path, env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


class RecordingObserver:
    """Stands in for the scheduler's bookkeeping when a provider is driven directly."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.rate_limited_count = 0
        self.waits: list[float] = []

    def request_done(self, endpoint: str, code: str, seconds: float) -> None:
        self.requests.append((endpoint, code))

    def rate_limited(self) -> None:
        self.rate_limited_count += 1

    def waiting(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
async def serve_app() -> Any:
    """Start aiohttp apps on loopback port 0; yields `start(app) -> base_url`."""
    from exporter.demo import serve

    runners = []

    async def start(app: Any) -> str:
        runner, base_url = await serve(app)
        runners.append(runner)
        return base_url

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def fetcher() -> Any:
    """A real SourceFetcher on a real ClientSession, recording what it sent."""
    import aiohttp

    from exporter.fetch import SourceFetcher

    async with aiohttp.ClientSession() as session:
        observer = RecordingObserver()
        fetch = SourceFetcher(session, 5.0, observer)
        fetch.observer_record = observer  # type: ignore[attr-defined]
        yield fetch


class SimulatorThread:
    """A vendor simulator served from a background thread's event loop, for tests that run the
    exporter as a separate process and need to switch the vendor's faults while it runs."""

    def __init__(self, simulator: Any, port: int = 0) -> None:
        import asyncio
        import threading

        from exporter.demo import serve

        self.simulator = simulator
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.runner, self.base_url = self._call(serve(simulator.app(), port=port))

    def _call(self, coro: Any) -> Any:
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def fault(self, **fault: Any) -> None:
        """Set the simulator's fault (`POST /_sim/fault`); no arguments clears it."""
        request = urllib.request.Request(f"{self.base_url}/_sim/fault", data=json.dumps(fault).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()

    def stop(self) -> None:
        if self.loop.is_running():
            self._call(self.runner.cleanup())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)


@pytest.fixture
def simulator_thread() -> Iterator[Any]:
    """`start(simulator) -> SimulatorThread`, each stopped after the test."""
    started: list[SimulatorThread] = []

    def start(simulator: Any, port: int = 0) -> SimulatorThread:
        thread = SimulatorThread(simulator, port)
        started.append(thread)
        return thread

    yield start
    for thread in started:
        thread.stop()
