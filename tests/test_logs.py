"""Log lines are scrubbed of configured secrets in every spelling a line can carry them."""

from __future__ import annotations

import json
import logging
from urllib.parse import quote

import pytest

from exporter.logs import JsonFormatter, LogfmtFormatter, Redactor

SECRET = 'k3y"with\\quote/and%+é'


def redactor() -> Redactor:
    scrub = Redactor()
    scrub.replace([SECRET, "abc"])
    return scrub


@pytest.mark.parametrize(
    "text",
    [f"key={SECRET}", json.dumps({"key": SECRET}), f"GET /x?key={quote(SECRET, safe='')}"],
    ids=["raw", "json-escaped", "url-encoded"],
)
def test_every_spelling_of_a_secret_is_redacted(text: str) -> None:
    assert "<redacted>" in redactor()(text)
    assert "k3y" not in redactor()(text)


def test_secrets_shorter_than_four_characters_are_not_redacted_everywhere() -> None:
    assert redactor()("abcdef") == "abcdef"


@pytest.mark.parametrize("formatter", [LogfmtFormatter, JsonFormatter])
def test_formatted_lines_never_carry_the_secret(formatter: type[LogfmtFormatter]) -> None:
    record = logging.LogRecord("x", logging.WARNING, "f", 1, "poll failed", None, None)
    record.reason = f'vendor said "{SECRET}"'
    line = formatter(redactor()).format(record)
    assert "k3y" not in line and "redacted" in line
