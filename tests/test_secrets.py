"""No configured secret ever leaves the process: not in any page, not in the debug log of a full
run (even when a vendor echoes the request, credentials included, into its error), not in
`--check-config` or `--once` output."""

from __future__ import annotations

import base64
import gzip
import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import bcrypt
import pytest

from exporter.demo.gcore import GcoreSimulator
from tests.conftest import exporter_env, http_get

SECRET_FROM_ENV = 'envKEY-7$"quoted"\\slash%2F+plus&amp=eq?'
SECRET_FROM_FILE = 'fileKEY-9 "with" spaces/back\\slash+plus%'
WEB_PASSWORD = "webPASS-3:colon"
REJECTED = "rejectedKEY-5"


def spellings(secret: str) -> set[str]:
    return {secret, json.dumps(secret)[1:-1], quote(secret, safe=""), quote_plus(secret)}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def post(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=b"", method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.parametrize("log_format", ["logfmt", "json"])
def test_no_secret_in_any_page_log_or_output_of_a_full_run(
    log_format: str, run_exporter: Any, simulator_thread: Any, tmp_path: Path
) -> None:
    good = simulator_thread(GcoreSimulator(api_key=SECRET_FROM_ENV))
    echoing = simulator_thread(GcoreSimulator(api_key=SECRET_FROM_FILE))
    rejecting = simulator_thread(GcoreSimulator(api_key="another-key"))
    echoing.fault(status=401, json={"exception_class": "NotAuthenticated", "message": "you sent {request}"})
    (tmp_path / "gcore.key").write_text(SECRET_FROM_FILE + "\n")
    hashed = bcrypt.hashpw(WEB_PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prom: {hashed!r}\n")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"global: {{timeout: 2s, state_dir: {str(tmp_path / 'state')!r}}}\n"
        "sources:\n"
        f"  - {{name: env, provider: gcore, base_url: {good.base_url}, api_key: '${{LSE_SECRET}}', interval: 1s}}\n"
        f"  - {{name: file, provider: gcore, base_url: {echoing.base_url}, api_key_file: gcore.key, interval: 1s}}\n"
        f"  - {{name: denied, provider: gcore, base_url: {rejecting.base_url}, api_key: {REJECTED}, interval: 1s}}\n"
    )
    env = exporter_env(LSE_SECRET=SECRET_FROM_ENV)
    exporter = run_exporter(
        "--config", str(config), f"--web.config.file={web}", "--log.level=debug", f"--log.format={log_format}", env=env
    )
    auth = basic("prom", WEB_PASSWORD)
    exporter.wait_until(lambda: http_get(f"{exporter.base_url}/-/ready", auth)[0] == 200)
    exporter.wait_until(lambda: b"redacted" in http_get(f"{exporter.base_url}/", auth)[2])

    seen: list[bytes] = []
    for path in ("/", "/metrics", "/-/healthy", "/-/ready", "/nope"):
        for headers in (auth, {}, basic("prom", SECRET_FROM_ENV)):
            seen.append(http_get(f"{exporter.base_url}{path}", headers)[2])
    openmetrics = {"Accept": "application/openmetrics-text; version=1.0.0", **auth}
    seen.append(http_get(f"{exporter.base_url}/metrics", openmetrics)[2])
    seen.append(
        gzip.decompress(http_get(f"{exporter.base_url}/metrics", {**openmetrics, "Accept-Encoding": "gzip"})[2])
    )
    seen.append(post(f"{exporter.base_url}/-/reload", auth)[1])
    exporter.proc.send_signal(signal.SIGHUP)
    exporter.wait_until(lambda: exporter.log().count("config reloaded") >= 2)
    landing = http_get(f"{exporter.base_url}/", auth)[2]
    assert exporter.stop() == 0
    log = exporter.log_path.read_text(errors="replace")

    config_bad = tmp_path / "bad.yaml"
    config_bad.write_text(config.read_text().replace("interval: 1s}", "interval: 1s, granularity: 2m}"))
    outputs = []
    for args in (["--check-config", "--config", str(config)], ["--check-config", "--config", str(config_bad)]):
        done = subprocess.run(
            [sys.executable, "-m", "exporter", *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
        )
        outputs.append(done.stdout + done.stderr)
    assert outputs[0].endswith("OK, 3 sources\n") and "granularity" in outputs[1]

    assert "<redacted>" in log and b"&lt;redacted&gt;" in landing, "the echoed credentials reached the redactor"
    assert "credentials rejected" in log
    everything = log + "\n".join(outputs) + b"\n".join([*seen, landing]).decode(errors="replace")
    for secret in (SECRET_FROM_ENV, SECRET_FROM_FILE, REJECTED, WEB_PASSWORD, hashed):
        for form in spellings(secret):
            assert form not in everything, f"{form!r} leaked"
