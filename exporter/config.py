"""The config's root model, and loading it with every problem reported at once.

Each problem is one line naming the file, the source and the key, for example
`config.yaml: sources[2] "gcore-prod": granularity: must be one of 1m, 5m, 15m, 1h, 1d`.
`${ENV}` is expanded in every string, and each secret key `k` may instead be given as
`k_file: /path` (trailing newline stripped). Secrets are SecretStr from here on, so they never
reach a repr, a log line or an error message. Types follow one rule, set out in
`exporter.settings`; what the file and its YAML may be is bounded by `exporter.configfile`.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    Discriminator,
    Field,
    PlainValidator,
    SecretStr,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from exporter.configfile import MAX_CONFIG_BYTES, MAX_SECRET_BYTES, FileProblem, decode_text, parse_yaml, read_bounded
from exporter.fetch import DEFAULT_MAX_RESPONSE_BYTES
from exporter.history.settings import HistorySettings
from exporter.providers import providers
from exporter.settings import Duration, NonEmpty, SourceSettings, StrictModel, parse_size
from exporter.sharding import AUTO, MAX_TOTAL_SHARDS, SHARD_HINT, TOTAL_HINT

MIN_RESPONSE_BYTES = 1 << 10
MAX_RESPONSE_BYTES = 1 << 30


def default_state_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "livestream-exporter")


def _total_shards(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(TOTAL_HINT)
    if value > MAX_TOTAL_SHARDS:
        raise ValueError(f"must be at most {MAX_TOTAL_SHARDS}")
    return value


def _shard(value: Any) -> int | Literal["auto"]:
    if value == AUTO or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value  # type: ignore[no-any-return]
    raise ValueError(SHARD_HINT)


def _response_limit(value: Any) -> int:
    size = parse_size(value)
    if not MIN_RESPONSE_BYTES <= size <= MAX_RESPONSE_BYTES:
        raise ValueError("must be from 1KiB to 1GiB")
    return size


class GlobalSettings(StrictModel):
    timeout: Duration = 10.0
    stale_after: Duration = 300.0
    state_dir: NonEmpty = Field(default_factory=default_state_dir)
    total_shards: Annotated[int, PlainValidator(_total_shards)] = 1
    shard: Annotated[int | Literal["auto"], PlainValidator(_shard)] = 0
    max_response_bytes: Annotated[int, PlainValidator(_response_limit)] = DEFAULT_MAX_RESPONSE_BYTES
    history: HistorySettings | None = None

    @field_validator("shard")
    @classmethod
    def _shard_below_total(cls, shard: int | str, info: ValidationInfo) -> int | str:
        total = info.data.get("total_shards")
        if total is not None and shard != AUTO and int(shard) >= total:
            raise ValueError(f"{shard} is out of range for {total} shards (total_shards; valid: 0 to {total - 1})")
        return shard


def _provider_of(source: Any) -> str | None:
    """The discriminator: a source's `provider` names its settings model."""
    provider = source.get("provider") if isinstance(source, dict) else getattr(source, "provider", None)
    return provider if isinstance(provider, str) else None


def _source_choice() -> Any:
    """Every registered provider's settings model, chosen by the `provider` key."""
    choices = tuple(Annotated[provider.settings_model, Tag(name)] for name, provider in providers().items())
    return Annotated[
        Union[choices],  # noqa: UP007 (a union built from a tuple has no `|` spelling)
        Discriminator(_provider_of, custom_error_type="provider", custom_error_message="unknown provider"),
    ]


AnySource = _source_choice()
_SOURCE_RULE = "source_rule"
"""The error type of the rules about sources together (duplicate names, shared budgets)."""


def _problem(index: int, key: str, message: str) -> InitErrorDetails:
    return InitErrorDetails(
        type=PydanticCustomError(_SOURCE_RULE, "{message}", {"message": message}), loc=(index, key), input=None
    )


class Config(StrictModel):
    """A whole config file, validated: the `global` section and the sources."""

    path: str
    global_: GlobalSettings = Field(default_factory=GlobalSettings, alias="global")
    sources: list[AnySource] = Field(default_factory=list)  # type: ignore[valid-type]

    @field_validator("sources")
    @classmethod
    def _sources_fit_together(cls, sources: list[SourceSettings], info: ValidationInfo) -> list[SourceSettings]:
        if not sources and (info.context or {}).get("require_sources", True):
            raise ValueError("at least one source is required (or run with --demo)")
        problems: list[InitErrorDetails] = []
        first: dict[str, int] = {}
        for index, source in enumerate(sources):
            if source.name in first:
                problems.append(_problem(index, "name", f"duplicate of sources[{first[source.name]}]"))
            else:
                first[source.name] = index
        for provider_name, provider_class in providers().items():
            own = [
                source
                for index, source in enumerate(sources)
                if source.provider == provider_name and first[source.name] == index
            ]
            for source, key, message in provider_class.check_sources(own) if own else ():
                problems.append(_problem(first[source.name], key, message))
        if problems:
            raise ValidationError.from_exception_data("sources", problems)
        return sources

    def secret_values(self) -> list[str]:
        return [secret for source in self.sources for secret in source.secret_values()]


class ConfigError(Exception):
    """Every problem found, one line each."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_UNREAD_SECRET = "<unread>"
"""Stands in for a secret whose file could not be used, so only that problem is reported."""
CONTROL_HINT = "must not contain control characters such as a line break or a tab"


def _unprintable(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cs")


def _escape_unprintable(text: str) -> str:
    """Keeps one problem on one line whatever a key or a name holds."""
    if not any(_unprintable(char) for char in text):
        return text
    return "".join(
        char.encode("unicode_escape", "backslashreplace").decode("ascii") if _unprintable(char) else char
        for char in text
    )


def _format_loc(loc: Iterable[Any]) -> str:
    text = ""
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


def _pydantic_message(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return "must be a mapping of keys"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message.replace("Input should be", "must be")


def _source_label(index: int, raw: Any) -> str:
    name = raw.get("name") if isinstance(raw, dict) else getattr(raw, "name", None)
    return f'sources[{index}] "{name}"' if isinstance(name, str) else f"sources[{index}]"


def _provider_message(raw: Any) -> tuple[str, str]:
    """(key, message) for a source whose `provider` picks no settings model."""
    if not isinstance(raw, dict):
        return "", "must be a mapping of keys"
    known = ", ".join(providers())
    provider = raw.get("provider")
    if provider is None:
        return "provider", f"required key is missing (one of {known})"
    if not isinstance(provider, str):
        return "provider", f"must be a string (one of {known})"
    return "provider", f"unknown provider {provider!r} (one of {known})"


class _Collector:
    """Gathers problems for one file, each prefixed with its location."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: list[str] = []
        self.muted: set[tuple[str, str]] = set()
        """Keys whose value was already refused while loading (an unset variable, an unreadable
        file, a control character): what validation says of that value is the same problem."""

    def add(self, where: str, key: str, message: str) -> None:
        if (where, key) in self.muted:
            return
        parts = [self.file, where, key, message]
        self.lines.append(_escape_unprintable(": ".join(part for part in parts if part)))

    def add_loaded(self, path: tuple[Any, ...], message: str, sources: Any) -> None:
        """A problem found while loading, at `path` in the document."""
        if path[:1] == ("sources",) and len(path) > 1 and isinstance(sources, list):
            where, key = _source_label(path[1], sources[path[1]]), _format_loc(path[2:])
        elif path[:1] == ("global",) and len(path) > 1:
            where, key = "global", _format_loc(path[1:])
        else:
            where, key = "", _format_loc(path)
        self.add(where, key, message)
        self.muted.add((where, key))

    def add_validation(self, error: ValidationError, sources: Any) -> None:
        for item in error.errors():
            loc = tuple(item["loc"])
            if loc[:1] == ("sources",) and len(loc) > 1 and isinstance(loc[1], int) and isinstance(sources, list):
                raw = sources[loc[1]]
                where = _source_label(loc[1], raw)
                if item["type"] == "provider":
                    self.add(where, *_provider_message(raw))
                    continue
                rest = loc[2:] if item["type"] == _SOURCE_RULE else loc[3:]
                self.add(where, _format_loc(rest), _pydantic_message(item))
            elif loc == ("sources",) and item["type"] == "list_type":
                self.add("", "sources", "must be a list of sources")
            elif loc[:1] == ("global",):
                self.add("global", _format_loc(loc[1:]), _pydantic_message(item))
            else:
                self.add("", _format_loc(loc), _pydantic_message(item))


def _expand_env(value: Any, path: tuple[Any, ...], problems: list[tuple[tuple[Any, ...], str]]) -> Any:
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                problems.append((path, f"environment variable {name} is not set"))
                return ""
            return os.environ[name]

        return _ENV_REF.sub(substitute, value)
    if isinstance(value, dict):
        return {key: _expand_env(item, (*path, key), problems) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand_env(item, (*path, index), problems) for index, item in enumerate(value)]
    return value


def _control_characters(value: Any, path: tuple[Any, ...], problems: list[tuple[tuple[Any, ...], str]]) -> None:
    """Every key and string is text for a header, a URL, a label or a log line: a line break
    in one could split a request or a log line, so none may hold a control character."""
    if isinstance(value, str):
        if any(_unprintable(char) for char in value):
            problems.append((path, CONTROL_HINT))
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and any(_unprintable(char) for char in key):
                problems.append(((*path, key), CONTROL_HINT))
            else:
                _control_characters(item, (*path, key), problems)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _control_characters(item, (*path, index), problems)


def _secret_keys(model: type[SourceSettings]) -> set[str]:
    return {
        name
        for name, info in model.model_fields.items()
        if info.annotation is SecretStr or SecretStr in getattr(info.annotation, "__args__", ())
    }


def read_secret_file(path: Path) -> str:
    """A secret file's text without its trailing newline; FileProblem if it is not one."""
    secret = decode_text(read_bounded(str(path), MAX_SECRET_BYTES)).rstrip("\r\n")
    if any(_unprintable(char) for char in secret):
        raise FileProblem(f"{CONTROL_HINT} (only a trailing newline is allowed)")
    return secret


def _read_secret_files(raw: dict[str, Any], base_dir: Path, report: Callable[[str, str], None]) -> dict[str, Any]:
    name = raw.get("provider")
    provider = providers().get(name) if isinstance(name, str) else None
    if provider is None:
        return raw
    resolved = dict(raw)
    for key in _secret_keys(provider.settings_model):
        file_key = f"{key}_file"
        if file_key not in raw:
            continue
        del resolved[file_key]
        if key in raw:
            report(file_key, f"set either {key} or {file_key}, not both")
            continue
        resolved[key] = _UNREAD_SECRET
        if not isinstance(raw[file_key], str):
            report(file_key, "must be a file path")
            continue
        secret_path = base_dir / raw[file_key]
        try:
            resolved[key] = read_secret_file(secret_path)
        except FileProblem as problem:
            if problem.os_error is not None:
                report(file_key, f"cannot read {secret_path}: {problem.os_error}")
            else:
                report(file_key, f"{secret_path}: {problem.reason}")
    return resolved


def parse_config(data: Any, file: str, base_dir: Path, *, require_sources: bool = True) -> Config:
    """Validate already-loaded YAML; raises ConfigError listing every problem."""
    problems = _Collector(file)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{file}: the top level must be a mapping with `global` and `sources`"])
    loaded: list[tuple[tuple[Any, ...], str]] = []
    data = _expand_env(data, (), loaded)
    sources = data.get("sources")
    if isinstance(sources, list):
        sources = [
            _read_secret_files(
                raw, base_dir, lambda key, message, at=index: loaded.append((("sources", at, key), message))
            )
            if isinstance(raw, dict)
            else raw
            for index, raw in enumerate(sources)
        ]
    _control_characters(data, (), loaded)
    for path, message in loaded:
        problems.add_loaded(path, message, sources)
    for key in data:
        if key not in ("global", "sources"):
            problems.add("", str(key), "unknown key (expected global, sources)")
    document = {"path": file, "global": data.get("global") or {}, "sources": [] if sources is None else sources}
    config: Config | None = None
    try:
        config = Config.model_validate(document, context={"require_sources": require_sources})
    except ValidationError as error:
        problems.add_validation(error, sources)
    if problems.lines or config is None:
        raise ConfigError(problems.lines)
    return config


def with_sources(config: Config, extra: list[SourceSettings]) -> Config:
    """`config` with `extra` sources added, checked together (names, shared budgets)."""
    sources = [*config.sources, *extra]
    try:
        return Config.model_validate({"path": config.path, "global": config.global_, "sources": sources})
    except ValidationError as error:
        problems = _Collector(config.path)
        problems.add_validation(error, sources)
        raise ConfigError(problems.lines) from None


def load_config(path: str, *, require_sources: bool = True) -> Config:
    """Read and validate a config file; raises ConfigError listing every problem."""
    try:
        data = parse_yaml(decode_text(read_bounded(path, MAX_CONFIG_BYTES)))
    except FileProblem as problem:
        raise ConfigError([f"{path}: {problem.reason}"]) from None
    return parse_config(data, path, Path(path).resolve().parent, require_sources=require_sources)
