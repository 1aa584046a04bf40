"""`livestream-exporter --health-probe`: does the exporter these flags describe answer?

Made for a container's HEALTHCHECK (docker/entrypoint.sh passes it the flags the exporter was
started with), so it finds the server where the server is: the same `--web.listen-address` (every
interface is probed on loopback) and the same `--web.config.file`, speaking TLS when that turns
it on. It asks whether the server answers, not who it is, so the certificate is not verified and
no password is needed: any HTTP answer counts as healthy, 401 (basic auth) and 429 (rate limit)
included, and so does a TLS refusal such as a required client certificate. No connection, a
reset or a timeout is unhealthy. Exit 0 healthy, 1 not, with one line saying why.
"""

from __future__ import annotations

import http.client
import ssl

from exporter.config import ConfigError
from exporter.webconfig import load_web_config

PROBE_PATH = "/-/healthy"
PROBE_TIMEOUT = 4.0
"""Seconds; under the HEALTHCHECK's own --timeout."""
_LOOPBACK = {None: "127.0.0.1", "": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def _connection(host: str, port: int, tls: bool, timeout: float) -> http.client.HTTPConnection:
    if not tls:
        return http.client.HTTPConnection(host, port, timeout=timeout)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return http.client.HTTPSConnection(host, port, timeout=timeout, context=context)


def health_probe(host: str | None, port: int, web_config_file: str | None, timeout: float = PROBE_TIMEOUT) -> int:
    try:
        tls = web_config_file is not None and load_web_config(web_config_file).ssl_context is not None
    except ConfigError as error:
        print(f"unhealthy: {'; '.join(error.lines)}")
        return 1
    target = _LOOPBACK.get(host, host)
    url = f"{'https' if tls else 'http'}://{f'[{target}]' if ':' in target else target}:{port}{PROBE_PATH}"
    connection = _connection(target, port, tls, timeout)
    try:
        connection.request("GET", PROBE_PATH, headers={"User-Agent": "livestream-exporter health probe"})
        status = connection.getresponse().status
    except ssl.SSLError as error:
        print(f"healthy: {url} refused the TLS handshake ({error.reason}), so it is running")
        return 0
    except (OSError, http.client.HTTPException) as error:
        print(f"unhealthy: {url}: {type(error).__name__}: {error}")
        return 1
    finally:
        connection.close()
    print(f"healthy: {url} answered {status}")
    return 0
