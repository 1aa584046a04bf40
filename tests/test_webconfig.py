"""`--web.config.file`: the exporter-toolkit format, TLS with a real client, bcrypt basic auth."""

from __future__ import annotations

import base64
import http.client
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import trustme

from exporter.config import ConfigError
from exporter.webconfig import load_web_config

PASSWORD = "s3cret-Pa55"


def bcrypt_hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def write_pair(ca: trustme.CA, directory: Path) -> None:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(directory / "server.key"))
    cert.cert_chain_pems[0].write_to_path(str(directory / "server.crt"))


def client_context(ca: trustme.CA, max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if max_version is not None:
        context.maximum_version = max_version
    return context


def https_get(
    port: int, path: str, context: ssl.SSLContext, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"https://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture
def tls_dir(tmp_path: Path) -> tuple[trustme.CA, Path]:
    ca = trustme.CA()
    write_pair(ca, tmp_path)
    return ca, tmp_path


def write_web_config(directory: Path, text: str) -> str:
    path = directory / "web.yml"
    path.write_text(text)
    return str(path)


GOOD = """
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  min_version: TLS13
http_server_config:
  headers:
    X-Frame-Options: deny
basic_auth_users:
  prometheus: {hash}
"""


def test_good_web_config_loads_tls_and_users(tls_dir: tuple[trustme.CA, Path]) -> None:
    _, directory = tls_dir
    hashed = bcrypt_hash(PASSWORD)
    config = load_web_config(write_web_config(directory, GOOD.replace("{hash}", hashed)))
    assert config.ssl_context is not None
    assert config.ssl_context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert config.users == {"prometheus": hashed}


BAD_WEB_CONFIGS = [
    ("tls_server_config: {cert_file: server.crt}\n", "web.yml: tls_server_config: missing one of key or key_file"),
    (
        "tls_server_config: {cert_file: server.crt, key_file: server.key, min_version: TLS14}\n",
        "web.yml: tls_server_config.min_version: must be one of TLS10, TLS11, TLS12, TLS13",
    ),
    (
        "tls_server_config: {cert_file: server.crt, key_file: server.key, min_version: TLS13, max_version: TLS12}\n",
        "web.yml: tls_server_config: min_version is newer than max_version",
    ),
    (
        "tls_server_config: {cert_file: missing.crt, key_file: server.key}\n",
        "web.yml: tls_server_config: cert_file: cannot read {dir}/missing.crt: No such file or directory",
    ),
    (
        "tls_server_config: {cert_file: server.key, key_file: server.key}\n",
        "web.yml: tls_server_config: cert and key are not a PEM certificate and its private key",
    ),
    (
        "tls_server_config: {cert_file: server.crt, key_file: server.key, cipher_suites: [TLS_AES_128_GCM_SHA256]}\n",
        "web.yml: tls_server_config.cipher_suites: is not supported by livestream-exporter"
        " (Python's ssl module has no equivalent)",
    ),
    (
        "tls_server_config: {cert_file: server.crt, key_file: server.key, client_auth_type: RequireAnyClientCert}\n",
        "web.yml: tls_server_config.client_auth_type: RequireAnyClientCert is not supported by livestream-exporter"
        " (Python's ssl module has no equivalent); use RequireAndVerifyClientCert",
    ),
    (
        "tls_server_config: {cert_file: server.crt, key_file: server.key, client_ca_file: server.crt}\n",
        "web.yml: tls_server_config: client_ca_file is set without a client_auth_type that checks certificates",
    ),
    ("basic_auth_user: {a: b}\n", "web.yml: basic_auth_user: unknown key"),
    ("basic_auth_users: {alice: hunter2}\n", "web.yml: basic_auth_users: alice: must be a bcrypt hash ($2y$10$...)"),
    (
        "basic_auth_users: {alice: '$2b$03$" + "a" * 53 + "'}\n",
        "web.yml: basic_auth_users: alice: bcrypt cost 03 is outside 04..31",
    ),
    (
        "basic_auth_users: {alice: '$2b$99$" + "a" * 53 + "'}\n",
        "web.yml: basic_auth_users: alice: bcrypt cost 99 is outside 04..31",
    ),
    (
        "basic_auth_users: {alice: '$2$10$" + "a" * 53 + "'}\n",
        "web.yml: basic_auth_users: alice: bcrypt version $2$ is not supported (use $2y$, $2b$ or $2a$)",
    ),
    (
        "http_server_config: {headers: {Server: nginx}}\n",
        "web.yml: http_server_config.headers: header 'Server' cannot be configured (one of Strict-Transport-Security,"
        " X-Content-Type-Options, X-Frame-Options, X-XSS-Protection, Content-Security-Policy)",
    ),
    (
        "http_server_config: {headers: {X-Frame-Options: allow}}\n",
        "web.yml: http_server_config.headers: X-Frame-Options must be one of deny, sameorigin",
    ),
    ("rate_limit: {interval: 1s}\n", "web.yml: rate_limit: burst must be at least 1 when interval is set"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_WEB_CONFIGS, ids=[row[1][9:60] for row in BAD_WEB_CONFIGS])
def test_bad_web_config_reports_one_exact_line(tls_dir: tuple[trustme.CA, Path], text: str, expected: str) -> None:
    _, directory = tls_dir
    path = write_web_config(directory, text)
    with pytest.raises(ConfigError) as caught:
        load_web_config(path)
    assert [line.replace(path, "web.yml").replace(str(directory), "{dir}") for line in caught.value.lines] == [expected]


def test_a_bad_hash_is_not_shown_in_the_error(tmp_path: Path) -> None:
    path = write_web_config(tmp_path, "basic_auth_users: {alice: 'not-a-hash-but-a-secret'}\n")
    with pytest.raises(ConfigError) as caught:
        load_web_config(path)
    assert "not-a-hash-but-a-secret" not in str(caught.value)


def test_tls_and_basic_auth_with_a_real_client(run_exporter: Any, tls_dir: tuple[trustme.CA, Path]) -> None:
    ca, directory = tls_dir
    path = write_web_config(directory, GOOD.replace("{hash}", bcrypt_hash(PASSWORD)))
    exporter = run_exporter("--demo", f"--web.config.file={path}")
    trusted = client_context(ca)
    auth = basic("prometheus", PASSWORD)
    status, headers, body = exporter.wait_until(lambda: https_get(exporter.port, "/metrics", trusted, auth))
    assert status == 200 and b"livestream_exporter_build_info" in body
    assert headers["X-Frame-Options"] == "deny"

    for wrong in (basic("prometheus", "wrong"), basic("nobody", PASSWORD), {}):
        status, headers, _ = https_get(exporter.port, "/metrics", trusted, wrong)
        assert status == 401
        assert headers["WWW-Authenticate"].startswith("Basic")
    assert https_get(exporter.port, "/-/healthy", trusted)[0] == 401

    with pytest.raises((OSError, http.client.HTTPException)):
        urllib.request.urlopen(f"http://127.0.0.1:{exporter.port}/metrics", timeout=5).read()

    with pytest.raises(urllib.error.URLError) as refused:
        https_get(exporter.port, "/metrics", client_context(ca, ssl.TLSVersion.TLSv1_2), auth)
    assert isinstance(refused.value.reason, ssl.SSLError)

    with pytest.raises(urllib.error.URLError) as untrusted:
        https_get(exporter.port, "/metrics", client_context(trustme.CA()), auth)
    assert isinstance(untrusted.value.reason, ssl.SSLCertVerificationError)
    assert "Traceback" not in exporter.log()


def test_rotated_certificate_and_changed_users_apply_without_a_restart(
    run_exporter: Any, tls_dir: tuple[trustme.CA, Path]
) -> None:
    ca, directory = tls_dir
    path = write_web_config(directory, GOOD.replace("{hash}", bcrypt_hash(PASSWORD)))
    exporter = run_exporter("--demo", f"--web.config.file={path}")
    exporter.wait_until(
        lambda: https_get(exporter.port, "/-/healthy", client_context(ca), basic("prometheus", PASSWORD))
    )

    new_ca = trustme.CA()
    write_pair(new_ca, directory)
    write_web_config(directory, GOOD.replace("{hash}", bcrypt_hash("n3w-Pa55")))
    new_auth = basic("prometheus", "n3w-Pa55")
    assert https_get(exporter.port, "/-/healthy", client_context(ca), new_auth)[0] == 200
    assert https_get(exporter.port, "/-/healthy", client_context(new_ca), new_auth)[0] == 200
    assert https_get(exporter.port, "/-/healthy", client_context(new_ca), basic("prometheus", PASSWORD))[0] == 401


def test_an_invalid_change_keeps_the_running_web_config(run_exporter: Any, tls_dir: tuple[trustme.CA, Path]) -> None:
    ca, directory = tls_dir
    path = write_web_config(directory, GOOD.replace("{hash}", bcrypt_hash(PASSWORD)))
    exporter = run_exporter("--demo", f"--web.config.file={path}")
    auth = basic("prometheus", PASSWORD)
    exporter.wait_until(lambda: https_get(exporter.port, "/-/healthy", client_context(ca), auth))
    write_web_config(directory, GOOD.replace("{hash}", "plain-text-password"))
    assert https_get(exporter.port, "/-/healthy", client_context(ca), auth)[0] == 200
    assert "web config not reloaded" in exporter.log()
    assert "plain-text-password" not in exporter.log()


def test_check_config_validates_the_web_config_too(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import exporter_env

    config = tmp_path / "config.yaml"
    config.write_text("sources:\n  - {name: a, provider: gcore, api_key: key-0123456}\n")
    web = write_web_config(tmp_path, "tls_server_config: {cert_file: server.crt}\n")
    done = subprocess.run(
        [sys.executable, "-m", "exporter", "--check-config", "--config", str(config), f"--web.config.file={web}"],
        capture_output=True,
        text=True,
        env=exporter_env(),
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (1, f"{web}: tls_server_config: missing one of key or key_file\n")
