"""Typed config building blocks shared by the global section and every vendor's schema.

Named field types carry their own validation and their own user-facing message, so that a
config error reads `granularity: must be one of 1m, 5m, 15m, 1h, 1d` rather than a pydantic
type name.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

_DURATION = re.compile(
    r"^(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m(?!s))?(?:(?P<s>\d+)s)?(?:(?P<ms>\d+)ms)?$"
)
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
DURATION_HINT = "must be a duration such as 500ms, 10s, 5m or 1h"


def parse_duration(value: Any) -> float:
    """Prometheus-style duration (`500ms`, `10s`, `1m30s`, `1h`) to seconds."""
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if match and value.strip():
            return sum(float(n) * _UNIT_SECONDS[unit] for unit, n in match.groupdict().items() if n)
    raise ValueError(DURATION_HINT)


def format_duration(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms"


def _positive(seconds: float) -> float:
    if seconds <= 0:
        raise ValueError("must be longer than 0s")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_positive)]


def _source_name(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9_-]+", value):
        raise ValueError("must match [a-z0-9_-]+ (it becomes the `source` label)")
    return value


SourceName = Annotated[str, AfterValidator(_source_name)]


def _label_name(value: str) -> str:
    if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", value) or value.startswith("__"):
        raise ValueError(f"{value!r} is not a valid Prometheus label name")
    if value in ("source", "provider"):
        raise ValueError(f"{value!r} is set by the exporter itself")
    return value


LabelName = Annotated[str, AfterValidator(_label_name)]


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    try:
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 0) >= 0
    except ValueError:
        valid = False
    if not valid:
        raise ValueError("must be an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials (they would not be treated as secrets)")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]


def _not_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


NonEmpty = Annotated[str, AfterValidator(_not_empty)]


def _path_segment(value: Any) -> str:
    """YAML reads an unquoted numeric ID as a number; it is still the same ID."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value or any(c in value for c in "/?#% \t\r\n"):
        raise ValueError("must be a name or ID without /, ?, #, % or spaces")
    return value


PathSegment = Annotated[str, BeforeValidator(_path_segment)]
"""An identifier a vendor's URL path carries (an account, an app, a channel, a stream)."""


def one_of(*choices: str) -> Any:
    """A string restricted to `choices`, with a message that lists them."""

    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return Annotated[str, BeforeValidator(check)]


class StrictModel(BaseModel):
    """Unknown keys are errors: a typo must never silently become a default."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class SourceSettings(StrictModel):
    """Keys every source has; a vendor's schema subclasses this with its own keys."""

    name: SourceName
    provider: str
    base_url: HttpUrl | None = None
    interval: Duration | None = None
    labels: dict[LabelName, str] = Field(default_factory=dict)

    def secret_values(self) -> list[str]:
        """Every secret this source holds, so logs and pages can be scrubbed of them."""
        return [
            value.get_secret_value()
            for value in self.__dict__.values()
            if isinstance(value, SecretStr) and value.get_secret_value()
        ]


__all__ = [
    "DURATION_HINT",
    "Duration",
    "HttpUrl",
    "LabelName",
    "NonEmpty",
    "PathSegment",
    "SecretStr",
    "SourceName",
    "SourceSettings",
    "StrictModel",
    "format_duration",
    "one_of",
    "parse_duration",
]
