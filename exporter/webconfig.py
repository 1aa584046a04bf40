"""`--web.config.file`: TLS and basic auth in the Prometheus exporter-toolkit web-config format.

The same file a Prometheus, node_exporter or blackbox_exporter operator already writes:

    tls_server_config:
      cert_file: server.crt        # relative paths are relative to this file
      key_file: server.key
      min_version: TLS12           # TLS10, TLS11, TLS12 (default), TLS13
    basic_auth_users:
      prometheus: $2y$10$...       # bcrypt hash, e.g. from `htpasswd -nBC 10 "" | tr -d ':\\n'`

Keys as in the toolkit: `tls_server_config` (`cert_file`/`cert`, `key_file`/`key`,
`client_auth_type`, `client_ca_file`/`client_ca`, `min_version`, `max_version`,
`prefer_server_cipher_suites`), `http_server_config` (`headers`, and `http2`, accepted but
HTTP/1.1 is what is served), `basic_auth_users` and `rate_limit` (`interval`, `burst`).
`cipher_suites`, `curve_preferences`, `client_allowed_sans` and the client-auth types that
accept a certificate without verifying it have no equivalent in Python's ssl module and are
refused by name rather than ignored. Unknown keys are errors, as in the toolkit.

Like the toolkit, the file is re-read when it changes (checked on every request), so users and
headers change without a restart, and so are the certificate and key files, so a rotated
certificate is served from the next connection on. A changed file that is invalid is logged
and the previous one is kept. Switching TLS on or off needs a restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator

from exporter.basicauth import THROTTLED_ANSWER_DELAY, BasicAuth, Verdict
from exporter.config import ConfigError
from exporter.server import may_close_while_waiting
from exporter.settings import StrictModel, one_of, parse_duration

log = logging.getLogger(__name__)

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
UNSUPPORTED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
EXTRA_HEADERS: dict[str, tuple[str, ...]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}
_BCRYPT = re.compile(r"^\$(?P<version>2[a-z]?)\$(?P<cost>\d\d)\$[./A-Za-z0-9]{53}$")
BCRYPT_VERSIONS = ("2a", "2b", "2x", "2y")
BCRYPT_COSTS = range(4, 32)
_UNSUPPORTED = "is not supported by livestream-exporter (Python's ssl module has no equivalent)"


class TLSServerConfig(StrictModel):
    cert_file: str | None = None
    key_file: str | None = None
    cert: str | None = None
    key: SecretStr | None = None
    client_auth_type: one_of(*CLIENT_AUTH, *UNSUPPORTED_CLIENT_AUTH) = "NoClientCert"  # type: ignore[valid-type]
    client_ca_file: str | None = None
    client_ca: str | None = None
    min_version: one_of(*TLS_VERSIONS) = "TLS12"  # type: ignore[valid-type]
    max_version: one_of(*TLS_VERSIONS) = "TLS13"  # type: ignore[valid-type]
    prefer_server_cipher_suites: bool = True
    cipher_suites: list[str] | None = None
    curve_preferences: list[str] | None = None
    client_allowed_sans: list[str] | None = None

    @field_validator("cipher_suites", "curve_preferences", "client_allowed_sans")
    @classmethod
    def _unsupported(cls, value: list[str] | None) -> list[str] | None:
        if value:
            raise ValueError(_UNSUPPORTED)
        return value

    @field_validator("client_auth_type")
    @classmethod
    def _verifying(cls, value: str) -> str:
        if value in UNSUPPORTED_CLIENT_AUTH:
            raise ValueError(f"{value} {_UNSUPPORTED}; use RequireAndVerifyClientCert")
        return value

    @model_validator(mode="after")
    def _complete(self) -> TLSServerConfig:
        if not (self.cert_file or self.cert):
            raise ValueError("missing one of cert or cert_file")
        if not (self.key_file or self.key):
            raise ValueError("missing one of key or key_file")
        for inline, file in (("cert", "cert_file"), ("key", "key_file"), ("client_ca", "client_ca_file")):
            if getattr(self, inline) and getattr(self, file):
                raise ValueError(f"set either {inline} or {file}, not both")
        if (self.client_ca or self.client_ca_file) and self.client_auth_type == "NoClientCert":
            raise ValueError("client_ca_file is set without a client_auth_type that checks certificates")
        if TLS_VERSIONS[self.min_version] > TLS_VERSIONS[self.max_version]:
            raise ValueError("min_version is newer than max_version")
        return self


class HTTPServerConfig(StrictModel):
    http2: bool = True
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _known_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if name not in EXTRA_HEADERS:
                raise ValueError(f"header {name!r} cannot be configured (one of {', '.join(EXTRA_HEADERS)})")
            allowed = EXTRA_HEADERS[name]
            if allowed and value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}")
        return headers


class RateLimitConfig(StrictModel):
    interval: float = 0.0
    burst: int = 0

    @field_validator("interval", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return 0.0 if value in (0, "0") else parse_duration(value)

    @model_validator(mode="after")
    def _some_burst(self) -> RateLimitConfig:
        if self.interval > 0 and self.burst < 1:
            raise ValueError("burst must be at least 1 when interval is set")
        return self


class WebConfigModel(StrictModel):
    tls_server_config: TLSServerConfig | None = None
    http_server_config: HTTPServerConfig = Field(default_factory=HTTPServerConfig)
    basic_auth_users: dict[str, SecretStr] = Field(default_factory=dict)
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt_hashes(cls, users: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for user, hashed in users.items():
            form = _BCRYPT.match(hashed.get_secret_value())
            if form is None:
                raise ValueError(f"{user}: must be a bcrypt hash ($2y$10$...)")
            if form["version"] not in BCRYPT_VERSIONS:
                version = form["version"]
                raise ValueError(f"{user}: bcrypt version ${version}$ is not supported (use $2y$, $2b$ or $2a$)")
            if int(form["cost"]) not in BCRYPT_COSTS:
                raise ValueError(f"{user}: bcrypt cost {form['cost']} is outside 04..31")
        return users


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if part != "[key]")


@dataclass
class WebConfig:
    """A loaded, validated web config and the files it depends on."""

    path: Path
    model: WebConfigModel
    ssl_context: ssl.SSLContext | None = None

    @property
    def users(self) -> dict[str, str]:
        return {user: hashed.get_secret_value() for user, hashed in self.model.basic_auth_users.items()}

    def files(self) -> list[Path]:
        tls = self.model.tls_server_config
        names = [tls.cert_file, tls.key_file, tls.client_ca_file] if tls else []
        return [self.path, *(self.path.parent / name for name in names if name)]


def load_web_config(path: str) -> WebConfig:
    """Read and validate the web config, including the certificate and key; raises ConfigError
    with one line per problem, never showing a key or a hash."""
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError([f"{path}: cannot read: {error.strerror or error}"]) from None
    except yaml.YAMLError as error:
        raise ConfigError([f"{path}: invalid YAML: {getattr(error, 'problem', None) or error}"]) from None
    try:
        model = WebConfigModel.model_validate(data or {})
    except ValidationError as error:
        lines = []
        for item in error.errors():
            message = str(item["msg"]).removeprefix("Value error, ").replace("Input should be", "must be")
            if item["type"] == "extra_forbidden":
                message = "unknown key"
            where = _location(tuple(item["loc"]))
            lines.append(f"{path}: {where}: {message}" if where else f"{path}: {message}")
        raise ConfigError(lines) from None
    config = WebConfig(file, model)
    if model.tls_server_config is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        apply_tls(context, model.tls_server_config, file.parent, path)
        config.ssl_context = context
    return config


def apply_tls(context: ssl.SSLContext, tls: TLSServerConfig, base: Path, path: str) -> None:
    """Load certificate, key, versions and client verification into `context` (also a live one:
    connections made afterwards use the new settings)."""
    where = f"{path}: tls_server_config"
    for key in ("cert_file", "key_file", "client_ca_file"):
        name = getattr(tls, key)
        if name:
            try:
                (base / name).read_bytes()
            except OSError as error:
                raise ConfigError([f"{where}: {key}: cannot read {base / name}: {error.strerror or error}"]) from None
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    context.maximum_version = TLS_VERSIONS[tls.max_version]
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        _load_pair(context, tls, base)
    except (ssl.SSLError, ValueError):
        raise ConfigError([f"{where}: cert and key are not a PEM certificate and its private key"]) from None
    context.verify_mode = CLIENT_AUTH[tls.client_auth_type]
    try:
        if tls.client_ca_file:
            context.load_verify_locations(cafile=str(base / tls.client_ca_file))
        elif tls.client_ca:
            context.load_verify_locations(cadata=tls.client_ca)
    except (ssl.SSLError, ValueError):
        raise ConfigError([f"{where}: the client CA is not a PEM certificate"]) from None


def _load_pair(context: ssl.SSLContext, tls: TLSServerConfig, base: Path) -> None:
    if tls.cert_file and tls.key_file:
        context.load_cert_chain(base / tls.cert_file, base / tls.key_file)
        return
    with tempfile.TemporaryDirectory(prefix="livestream-exporter-tls-") as directory:
        cert = base / tls.cert_file if tls.cert_file else Path(directory, "cert.pem")
        key = base / tls.key_file if tls.key_file else Path(directory, "key.pem")
        if tls.cert:
            cert.write_text(tls.cert)
        if tls.key:
            descriptor = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(tls.key.get_secret_value())
        context.load_cert_chain(cert, key)


def _stamp(files: list[Path]) -> tuple[tuple[int, int] | None, ...]:
    stamps = []
    for file in files:
        try:
            info = file.stat()
            stamps.append((info.st_mtime_ns, info.st_size))
        except OSError:
            stamps.append(None)
    return tuple(stamps)


@dataclass
class _TokenBucket:
    interval: float
    burst: int
    tokens: float = 0.0
    updated: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(float(self.burst), self.tokens + (now - self.updated) / self.interval)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebSecurity:
    """Applies a web config to every request: rate limit, extra headers, basic auth."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.ssl_context = config.ssl_context
        self._stamp = _stamp(config.files())
        self._failed_stamp: tuple[tuple[int, int] | None, ...] | None = None
        self._auth = BasicAuth(config.users)
        self._bucket = self._new_bucket()

    def _new_bucket(self) -> _TokenBucket | None:
        limit = self.config.model.rate_limit
        return _TokenBucket(limit.interval, limit.burst) if limit.interval > 0 else None

    def refresh(self) -> bool:
        """Re-read the web config and its certificate files if any of them changed. False when
        the changed config is invalid (it is logged, once, and the previous one kept)."""
        stamp = _stamp(self.config.files())
        if stamp == self._stamp or stamp == self._failed_stamp:
            return stamp == self._stamp
        try:
            fresh = load_web_config(str(self.config.path))
            if (fresh.ssl_context is None) != (self.ssl_context is None):
                raise ConfigError([f"{self.config.path}: switching TLS on or off needs a restart"])
        except ConfigError as error:
            self._failed_stamp = stamp
            for line in error.lines:
                log.error("web config not reloaded, keeping the previous one", extra={"problem": line})
            return False
        if self.ssl_context is not None and fresh.model.tls_server_config is not None:
            apply_tls(self.ssl_context, fresh.model.tls_server_config, fresh.path.parent, str(fresh.path))
        self.config = WebConfig(fresh.path, fresh.model, self.ssl_context)
        self._stamp = _stamp(self.config.files())
        self._failed_stamp = None
        self._auth.update(self.config.users)
        self._bucket = self._new_bucket()
        log.info("web config reloaded", extra={"file": str(self.config.path)})
        return True

    async def _authorized(self, request: web.Request) -> Verdict:
        if not self.config.model.basic_auth_users:
            return Verdict.GRANTED
        return await self._auth.check(request.headers.get("Authorization", ""), request.remote or "")

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.refresh()
        headers = self.config.model.http_server_config.headers
        if self._bucket is not None and not self._bucket.allow():
            response: web.StreamResponse = web.Response(status=429, text="Too Many Requests\n")
        elif (verdict := await self._authorized(request)) is Verdict.THROTTLED:
            may_close_while_waiting(request)
            await asyncio.sleep(THROTTLED_ANSWER_DELAY)
            response = web.Response(status=429, text="Too Many Requests\n", headers={"Retry-After": "1"})
        elif verdict is Verdict.DENIED:
            response = web.Response(
                status=401, text="Unauthorized\n", headers={"WWW-Authenticate": 'Basic realm="livestream-exporter"'}
            )
        else:
            try:
                response = await handler(request)
            except web.HTTPException as error:
                error.headers.update(headers)
                raise
        response.headers.update(headers)
        return response

    def close(self) -> None:
        self._auth.close()
