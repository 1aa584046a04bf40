"""`--health-probe`: healthy when the exporter its flags describe answers, on loopback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ExporterProcess, exporter_env, free_port, http_get


def probe(*flags: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", "--health-probe", *flags],
        capture_output=True,
        text=True,
        timeout=30,
        env=exporter_env(),
        cwd=cwd,
    )


def test_probe_of_an_exporter_on_every_interface_asks_loopback_and_is_healthy(tmp_path: Path) -> None:
    port = free_port()
    exporter = ExporterProcess(["--demo", f"--web.listen-address=:{port}"], tmp_path)  # the later flag wins
    try:
        exporter.wait_until(lambda: http_get(f"http://127.0.0.1:{port}/-/healthy")[0] == 200)
        done = probe(f"--web.listen-address=:{port}", cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.strip() == f"healthy: http://127.0.0.1:{port}/-/healthy answered 200"
    finally:
        exporter.stop()


def test_probe_with_nothing_listening_is_unhealthy(tmp_path: Path) -> None:
    done = probe(f"--web.listen-address=127.0.0.1:{free_port()}", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout.startswith("unhealthy: http://127.0.0.1:") and "Connection refused" in done.stdout


def test_probe_with_a_broken_web_config_says_so_and_is_unhealthy(tmp_path: Path) -> None:
    web_config = tmp_path / "web.yml"
    web_config.write_text("tls_server_config: {cert_file: missing.crt, key_file: missing.key}\n")
    done = probe(f"--web.config.file={web_config}", cwd=tmp_path)
    assert done.returncode == 1 and done.stdout.startswith(f"unhealthy: {web_config}")
