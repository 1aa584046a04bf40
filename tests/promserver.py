"""A real Prometheus (Debian's /usr/bin/prometheus) on a free loopback port, for end-to-end tests.

    server = PrometheusServer(tmp_path)
    base_url = server.start(config_text)   # waits until /-/ready, at most `timeout` seconds
    server.query("up")                      # -> the `result` list of /api/v1/query
    server.stop()

Every wait is bounded; on failure the error carries Prometheus's log.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tests.conftest import free_port, http_get

T = TypeVar("T")

PROMETHEUS_MISSING = "prometheus not installed (Debian package prometheus; CI installs it with apt-get)"


def prometheus_binary() -> str | None:
    return shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").is_file() else None)


class PrometheusError(AssertionError):
    """Prometheus refused a query or did not become ready; the message says why."""


class PrometheusServer:
    """One Prometheus process with its data and config under `directory`."""

    def __init__(self, directory: Path, binary: str | None = None) -> None:
        found = binary or prometheus_binary()
        if found is None:
            raise FileNotFoundError(PROMETHEUS_MISSING)
        self.binary = found
        self.directory = directory
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.config_path = directory / "prometheus.yml"
        self.log_path = directory / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, config_text: str, timeout: float = 30.0, flags: tuple[str, ...] = ()) -> str:
        """Write the config, start Prometheus (with extra command-line `flags`) and wait until it
        is ready; returns its base URL."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(config_text, encoding="utf-8")
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                    *flags,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
            )
        self.wait_until(lambda: http_get(f"{self.base_url}/-/ready", timeout=2)[0] == 200, timeout)
        return self.base_url

    def api(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET /api/v1/<path>; returns `data`, raises PrometheusError on any error answer."""
        url = f"{self.base_url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        status, _, body = http_get(url, timeout=10)
        try:
            answer = json.loads(body)
        except ValueError as error:
            raise PrometheusError(f"{path}: HTTP {status}, not JSON: {body[:200]!r}") from error
        if status != 200 or answer.get("status") != "success":
            raise PrometheusError(f"{path} {params}: HTTP {status}: {answer.get('error', body[:200])}")
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query at now; returns the result list (samples of a vector, or [scalar])."""
        data = self.api("query", {"query": expr})
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def wait_until(self, predicate: Callable[[], T], timeout: float) -> T:
        """Poll `predicate` until it returns something truthy, for at most `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise PrometheusError(f"prometheus exited with {self.proc.returncode}:\n{self.log()}")
            try:
                result = predicate()
            except (OSError, PrometheusError):
                result = None
            if result:
                return result
            if time.monotonic() >= deadline:
                raise PrometheusError(f"condition not met within {timeout}s; prometheus log:\n{self.log()}")
            time.sleep(0.25)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=timeout)
