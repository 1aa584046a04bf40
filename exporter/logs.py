"""Structured logs (logfmt or JSON) that never carry a configured secret.

Every formatted line passes through the redactor, which knows each secret value from the
config: even if a vendor echoed a key back in an error body, it is replaced by `<redacted>`.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from urllib.parse import quote, quote_plus

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}
_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
REDACTED = "<redacted>"


def _spellings(secret: str) -> set[str]:
    """The forms a secret takes on its way into a line: as is, JSON-escaped (JSON logs, logfmt
    quoting) and URL-encoded (a vendor or proxy echoing the request URL)."""
    return {secret, json.dumps(secret)[1:-1], quote(secret, safe=""), quote_plus(secret, safe="")}


class Redactor:
    def __init__(self) -> None:
        self.known: list[str] = []
        self.secrets: list[str] = []

    def replace(self, secrets: list[str]) -> None:
        self.known = [secret for secret in secrets if len(secret) >= 4]
        found = {form for secret in self.known for form in _spellings(secret)}
        self.secrets = sorted(found, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text


def _fields(record: logging.LogRecord) -> dict[str, object]:
    fields: dict[str, object] = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": {"WARNING": "warn", "CRITICAL": "error"}.get(record.levelname, record.levelname.lower()),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    for key, value in vars(record).items():
        if key not in _STANDARD_ATTRS and not key.startswith("_"):
            fields[key] = value
    if record.exc_info:
        fields["error"] = logging.Formatter().formatException(record.exc_info).splitlines()[-1]
    return fields


def _logfmt_value(value: object) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\\\n'):
        return json.dumps(text)
    return text


class LogfmtFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        line = " ".join(f"{key}={_logfmt_value(value)}" for key, value in _fields(record).items())
        return self.redact(line)


class JsonFormatter(LogfmtFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return self.redact(json.dumps(_fields(record), default=str))


def setup_logging(level: str, fmt: str, redact: Redactor) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(redact) if fmt == "json" else LogfmtFormatter(redact))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
