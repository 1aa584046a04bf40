"""Loading and validating the YAML config, reporting every problem at once.

Each problem is one line naming the file, the source and the key, for example
`config.yaml: sources[2] "gcore-prod": granularity: must be one of 1m, 5m, 15m, 1h, 1d`.
`${ENV}` is expanded in every string, and each secret key `k` may instead be given as
`k_file: /path` (trailing newline stripped). Secrets are SecretStr from here on, so they never
reach a repr, a log line or an error message.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ByteSize, Field, SecretStr, ValidationError

from exporter.history.settings import HistorySettings
from exporter.providers import providers
from exporter.settings import Duration, SourceSettings, StrictModel
from exporter.sharding import ShardSetting, TotalShards


def default_state_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "livestream-exporter")


class GlobalSettings(StrictModel):
    timeout: Duration = 10.0
    stale_after: Duration = 300.0
    state_dir: str = Field(default_factory=default_state_dir)
    shard: ShardSetting = 0
    total_shards: TotalShards = 1
    max_response_bytes: ByteSize = Field(default=ByteSize(64 * 1024 * 1024), gt=0)
    history: HistorySettings | None = None


@dataclass
class Config:
    path: str
    global_: GlobalSettings = field(default_factory=GlobalSettings)
    sources: list[SourceSettings] = field(default_factory=list)

    def secret_values(self) -> list[str]:
        return [secret for source in self.sources for secret in source.secret_values()]


class ConfigError(Exception):
    """Every problem found, one line each."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _format_loc(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


def _pydantic_message(error: dict[str, Any]) -> str:
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


class _Collector:
    """Gathers problems for one file, each prefixed with its location."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: list[str] = []
        self.muted: set[tuple[str, str]] = set()
        """Keys already reported as an unset environment variable: what follows from the empty
        value is the same problem, not another one."""

    def add(self, where: str, key: str, message: str) -> None:
        if (where, key) in self.muted:
            return
        parts = [self.file, where, key, message]
        self.lines.append(": ".join(part for part in parts if part))

    def add_validation(self, where: str, error: ValidationError) -> None:
        for item in error.errors():
            self.add(where, _format_loc(tuple(item["loc"])), _pydantic_message(item))


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


_UNREAD_SECRET = "<unread>"
"""Stands in for a secret whose file could not be read, so only that problem is reported."""


def _secret_keys(model: type[SourceSettings]) -> set[str]:
    return {
        name
        for name, info in model.model_fields.items()
        if info.annotation is SecretStr or SecretStr in getattr(info.annotation, "__args__", ())
    }


def _read_secret_files(
    raw: dict[str, Any], model: type[SourceSettings], base_dir: Path, report: Any
) -> dict[str, Any]:
    resolved = dict(raw)
    for key in _secret_keys(model):
        file_key = f"{key}_file"
        if file_key not in raw:
            continue
        del resolved[file_key]
        if key in raw:
            report(file_key, f"set either {key} or {file_key}, not both")
            continue
        if not isinstance(raw[file_key], str):
            report(file_key, "must be a file path")
            resolved[key] = _UNREAD_SECRET
            continue
        secret_path = base_dir / raw[file_key]
        try:
            resolved[key] = secret_path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as error:
            report(file_key, f"cannot read {secret_path}: {error.strerror or error}")
            resolved[key] = _UNREAD_SECRET
    return resolved


def _source_label(index: int, raw: Any) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    return f'sources[{index}] "{name}"' if isinstance(name, str) else f"sources[{index}]"


def _parse_source(index: int, raw: Any, base_dir: Path, problems: _Collector) -> SourceSettings | None:
    where = _source_label(index, raw)
    if not isinstance(raw, dict):
        problems.add(where, "", "must be a mapping of keys")
        return None
    known = providers()
    provider_name = raw.get("provider")
    if provider_name is None:
        problems.add(where, "provider", f"required key is missing (one of {', '.join(known)})")
        return None
    if not isinstance(provider_name, str):
        problems.add(where, "provider", f"must be a string (one of {', '.join(known)})")
        return None
    if provider_name not in known:
        problems.add(where, "provider", f"unknown provider {provider_name!r} (one of {', '.join(known)})")
        return None
    model = known[provider_name].settings_model
    before = len(problems.lines)
    resolved = _read_secret_files(raw, model, base_dir, lambda key, msg: problems.add(where, key, msg))
    try:
        settings = model.model_validate(resolved)
    except ValidationError as error:
        problems.add_validation(where, error)
        return None
    for key in sorted(_secret_keys(model)):
        value = getattr(settings, key)
        if isinstance(value, SecretStr) and not value.get_secret_value():
            problems.add(where, key, "must not be empty")
    return settings if len(problems.lines) == before else None


def parse_config(data: Any, file: str, base_dir: Path, *, require_sources: bool = True) -> Config:
    """Validate already-loaded YAML; raises ConfigError listing every problem."""
    problems = _Collector(file)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{file}: the top level must be a mapping with `global` and `sources`"])
    env_problems: list[tuple[tuple[Any, ...], str]] = []
    data = _expand_env(data, (), env_problems)
    for path, message in env_problems:
        if path[:1] == ("sources",) and len(path) > 1:
            raw = data["sources"][path[1]]
            where, key = _source_label(path[1], raw), _format_loc(path[2:])
        elif path[:1] == ("global",) and len(path) > 1:
            where, key = "global", _format_loc(path[1:])
        else:
            where, key = "", _format_loc(path)
        problems.add(where, key, message)
        problems.muted.add((where, key))
    for key in data:
        if key not in ("global", "sources"):
            problems.add("", str(key), "unknown key (expected global, sources)")
    global_settings = GlobalSettings()
    try:
        global_settings = GlobalSettings.model_validate(data.get("global") or {})
    except ValidationError as error:
        problems.add_validation("global", error)
    raw_sources = data.get("sources")
    sources: list[SourceSettings] = []
    if raw_sources is None:
        raw_sources = []
    if not isinstance(raw_sources, list):
        problems.add("", "sources", "must be a list of sources")
    elif require_sources and not raw_sources:
        problems.add("", "sources", "at least one source is required (or run with --demo)")
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_sources if isinstance(raw_sources, list) else []):
        source = _parse_source(index, raw, base_dir, problems)
        if source is None:
            continue
        if source.name in seen:
            problems.add(_source_label(index, raw), "name", f"duplicate of sources[{seen[source.name]}]")
            continue
        seen[source.name] = index
        sources.append(source)
    for provider_name, provider_class in providers().items():
        own = [source for source in sources if source.provider == provider_name]
        for source, key, message in provider_class.check_sources(own) if own else ():
            problems.add(f'sources[{seen[source.name]}] "{source.name}"', key, message)
    if problems.lines:
        raise ConfigError(problems.lines)
    return Config(path=file, global_=global_settings, sources=sources)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error: PyYAML
    would silently keep the last, and a config whose second `api_key` wins is a typo waiting."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
    loader.flatten_mapping(node)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_config(path: str, *, require_sources: bool = True) -> Config:
    """Read and validate a config file; raises ConfigError listing every problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError([f"{path}: cannot read: {error.strerror or error}"]) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError([f"{path}: {where}invalid YAML: {problem}"]) from None
    return parse_config(data, path, Path(path).resolve().parent, require_sources=require_sources)
