"""Typed config building blocks shared by the global section and every vendor's schema.

Named field types carry their own validation and their own user-facing message, so that a
config error reads `granularity: must be one of 1m, 5m, 15m, 1h, 1d` rather than a pydantic
type name.

One rule for types, everywhere: a value must already be of the kind its key takes, and nothing
is converted. A string key takes a string, a whole-number key an integer, a number key an
integer or a decimal, a switch `true` or `false`; `"100"`, `"yes"` and `2.0` for a stream ID
are refused. Durations are strings with a unit (`500ms`, `10s`, `5m`, `1h`, `1d`): a bare `60`
is refused, because nothing in it says seconds rather than minutes (Prometheus refuses it too).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

_DURATION = re.compile(r"^(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m(?!s))?(?:(?P<s>\d+)s)?(?:(?P<ms>\d+)ms)?$")
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
DURATION_HINT = "must be a duration such as 500ms, 10s, 5m or 1h"
MAX_DURATION = 7 * 86400.0
"""The longest duration any key takes: far above any sensible value, far below what timers
and timestamps overflow on."""
MAX_INTERVAL = 86400.0
"""The longest poll interval: a day, the coarsest bucket any vendor keeps (Gcore's `1d`)."""
LOOPBACK_MIN_INTERVAL = 0.1
"""The shortest interval for a source whose `base_url` is on loopback: a simulator (`--demo`,
tests, benches), never a vendor, so the vendor's own minimum does not apply."""
MAX_NAME_LENGTH = 64
"""A source name becomes a label and a state file name (`<name>.json` and its temporary and
moved-aside siblings), which must fit a file system's 255-byte limit with room to spare."""
MIN_SECRET_LENGTH = 8
"""The log redactor replaces every occurrence of a secret; a shorter one would both match
ordinary text and be guessable from what is left around it. Every vendor's real keys are
longer (16 to 40 characters)."""


def parse_duration(value: Any) -> float:
    """Prometheus-style duration (`500ms`, `10s`, `1m30s`, `1h`) to seconds."""
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if match and value.strip():
            return sum(float(n) * _UNIT_SECONDS[unit] for unit, n in match.groupdict().items() if n)
    raise ValueError(DURATION_HINT)


SIZE_HINT = "must be a size such as 64MiB, or a whole number of bytes"
_BYTE_SIZE = TypeAdapter(ByteSize)


def parse_size(value: Any) -> int:
    """`64MiB`, `500kB` or a whole number of bytes (the key's name says bytes) to bytes."""
    if type(value) is int:
        return value
    if isinstance(value, str):
        try:
            return int(_BYTE_SIZE.validate_python(value))
        except ValidationError:
            pass
    raise ValueError(SIZE_HINT)


def format_duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms"


def _bounded(seconds: float) -> float:
    if seconds <= 0:
        raise ValueError("must be longer than 0s")
    if seconds > MAX_DURATION:
        raise ValueError(f"must be at most {format_duration(MAX_DURATION)}")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_bounded)]


def _source_name(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9_-]+", value):
        raise ValueError("must match [a-z0-9_-]+ (it becomes the `source` label)")
    if len(value) > MAX_NAME_LENGTH:
        raise ValueError(f"must be at most {MAX_NAME_LENGTH} characters (it names the source's state file)")
    return value


SourceName = Annotated[str, AfterValidator(_source_name)]


def _label_name(value: str) -> str:
    if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", value) or value.startswith("__"):
        raise ValueError(f"{value!r} is not a valid Prometheus label name")
    if value in ("source", "provider"):
        raise ValueError(f"{value!r} is set by the exporter itself")
    return value


LabelName = Annotated[str, AfterValidator(_label_name)]


def _not_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


NonEmpty = Annotated[str, AfterValidator(_not_empty)]


def _redactable(value: SecretStr) -> SecretStr:
    secret = value.get_secret_value()
    if not secret:
        raise ValueError("must not be empty")
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"must be at least {MIN_SECRET_LENGTH} characters (a shorter secret cannot be kept out of logs)"
        )
    return value


Secret = Annotated[SecretStr, AfterValidator(_redactable)]
"""A credential: never in a repr, a log line or an error message, so long enough to redact."""


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


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _path_segment(value: Any) -> str:
    if type(value) is int:
        raise ValueError("must be a valid string (write an ID in quotes)")
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
    """Unknown keys are errors (a typo must never silently become a default), and values are
    never converted between kinds (see the module's rule)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class SourceSettings(StrictModel):
    """Keys every source has; a vendor's schema subclasses this with its own keys."""

    min_interval: ClassVar[float] = 10.0
    """The shortest `interval` this vendor may be polled at: set per vendor from how often its
    data changes and its rate limits."""

    name: SourceName
    provider: str
    base_url: HttpUrl | None = None
    interval: Duration | None = None
    labels: dict[LabelName, str] = Field(default_factory=dict)

    @field_validator("interval")
    @classmethod
    def _interval_in_range(cls, interval: float | None, info: ValidationInfo) -> float | None:
        if interval is None:
            return None
        base_url = info.data.get("base_url")
        floor = LOOPBACK_MIN_INTERVAL if base_url and is_loopback(base_url) else cls.min_interval
        if interval < floor:
            where = "on loopback" if floor == LOOPBACK_MIN_INTERVAL else f"for {info.data.get('provider')}"
            raise ValueError(f"must be at least {format_duration(floor)} {where}")
        if interval > MAX_INTERVAL:
            raise ValueError(f"must be at most {format_duration(MAX_INTERVAL)}")
        return interval

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
    "Secret",
    "SecretStr",
    "SourceName",
    "SourceSettings",
    "StrictModel",
    "format_duration",
    "is_loopback",
    "one_of",
    "parse_duration",
]
