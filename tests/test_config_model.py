"""The root config model: one pydantic model, sources chosen by `provider`, rules as validators."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from exporter.config import Config, ConfigError, load_config, parse_config, with_sources
from exporter.logs import REDACTED, Redactor
from exporter.providers import providers
from exporter.settings import MIN_SECRET_LENGTH

GCORE = {"name": "g", "provider": "gcore", "api_key": "key-0123456"}
LLS = {"name": "l", "provider": "lls", "access_key_id": "AK1", "access_key_secret": "secret-0123", "domain": "d"}


def parse(*sources: dict, **global_: object) -> Config:
    return parse_config({"global": global_, "sources": list(sources)}, "config.yaml", Path("."))


def test_each_source_is_validated_by_the_settings_model_its_provider_names() -> None:
    config = parse(GCORE, LLS)
    known = providers()
    assert [type(source) for source in config.sources] == [
        known["gcore"].settings_model,
        known["lls"].settings_model,
    ]


def test_the_validated_config_cannot_be_changed_in_place() -> None:
    config = parse(GCORE)
    with pytest.raises(ValidationError):
        config.global_ = config.global_  # type: ignore[misc]


def test_the_shard_rule_holds_in_the_model_itself() -> None:
    with pytest.raises(ValidationError) as caught:
        Config.model_validate(
            {"path": "c.yaml", "global": {"shard": 2, "total_shards": 2}, "sources": []},
            context={"require_sources": False},
        )
    assert [error["loc"] for error in caught.value.errors()] == [("global", "shard")]


def test_shard_auto_passes_whatever_the_count() -> None:
    assert parse(GCORE, shard="auto", total_shards=3).global_.shard == "auto"


def test_max_response_bytes_defaults_to_64_mib() -> None:
    assert parse(GCORE).global_.max_response_bytes == 64 * 1024 * 1024


@pytest.mark.parametrize(("written", "size"), [(65536, 65536), ("2MiB", 2 * 1024 * 1024)])
def test_max_response_bytes_is_bytes_when_bare_or_a_size_with_a_unit(written: object, size: int) -> None:
    assert parse(GCORE, max_response_bytes=written).global_.max_response_bytes == size


def test_added_sources_are_checked_with_the_others() -> None:
    config = parse(GCORE)
    with pytest.raises(ConfigError) as caught:
        with_sources(config, parse({**GCORE, "api_key": "another-key"}).sources)
    assert caught.value.lines == ['config.yaml: sources[1] "g": name: duplicate of sources[0]']


def test_added_sources_leave_the_original_config_as_it_was() -> None:
    config = parse(GCORE)
    combined = with_sources(config, parse({**GCORE, "name": "h"}).sources)
    assert ([s.name for s in config.sources], [s.name for s in combined.sources]) == (["g"], ["g", "h"])


def test_a_short_interval_is_allowed_against_a_simulator_on_loopback() -> None:
    config = parse({**GCORE, "base_url": "http://127.0.0.1:9", "interval": "100ms"})
    assert config.sources[0].interval == 0.1


def test_the_vendor_minimum_interval_is_allowed() -> None:
    assert parse({**LLS, "interval": "30s"}).sources[0].interval == 30


def test_a_secret_of_the_minimum_length_is_redacted_from_log_lines() -> None:
    secret = "k" * MIN_SECRET_LENGTH
    redactor = Redactor()
    redactor.replace(parse({**GCORE, "api_key": secret}).secret_values())
    assert redactor(f'vendor said: invalid key "{secret}"') == f'vendor said: invalid key "{REDACTED}"'


def test_anchors_and_merge_keys_work_within_the_bounds(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "sources:\n"
        "  - &first {name: a, provider: gcore, api_key: key-0123456, granularity: 5m}\n"
        "  - {<<: *first, name: b}\n"
    )
    assert [(s.name, s.granularity) for s in load_config(str(path)).sources] == [("a", "5m"), ("b", "5m")]


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"\xef\xbb\xbfsources:\n  - {name: a, provider: gcore, api_key: key-0123456}\n")
    assert load_config(str(path)).sources[0].name == "a"


def test_a_fifo_without_a_writer_as_secret_file_is_read_as_empty_not_waited_on(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "key.fifo")
    path = tmp_path / "config.yaml"
    path.write_text("sources:\n  - {name: a, provider: gcore, api_key_file: key.fifo}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    assert caught.value.lines == [f'{path}: sources[0] "a": api_key: must not be empty']
