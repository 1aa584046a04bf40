"""What every provider shares: built with its shard view, failures read the same way, one set of
field types. Each vendor is built from its simulator's demo source and polled against a loopback
server that answers like a broken vendor or a proxy would."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from pydantic import ValidationError

from exporter.demo import simulators
from exporter.poll import WHOLE_SOURCE, PollError, ShardView
from exporter.providers import providers
from exporter.providers.base import Provider
from exporter.settings import NonEmpty, PathSegment, StrictModel

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
VENDORS = sorted(providers())


def built(vendor: str, base_url: str, shard: ShardView = WHOLE_SOURCE) -> Provider:
    [simulator] = [sim for sim in simulators() if sim.provider == vendor]
    source = simulator.demo_sources(base_url)[0]
    provider_class = providers()[vendor]
    return provider_class(provider_class.settings_model.model_validate(source), shard)


def answering(status: int, body: bytes, content_type: str, **headers: str) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type=content_type, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def only_failures(result: Any) -> list[PollError]:
    assert not result.samples, result.samples
    return list(result.failures.values())


@pytest.mark.parametrize("vendor", VENDORS)
async def test_an_html_error_page_fails_the_poll_naming_its_status(vendor: str, serve_app, fetcher) -> None:
    base_url = await serve_app(answering(502, b"<html>Bad Gateway</html>", "text/html"))
    failures = only_failures(await built(vendor, base_url).poll(fetcher, NOW))
    assert failures
    assert {(error.reason, error.status) for error in failures} == {("HTTP 502", 502)}


@pytest.mark.parametrize("vendor", VENDORS)
async def test_a_bare_429_is_rate_limited_with_its_retry_after(vendor: str, serve_app, fetcher) -> None:
    base_url = await serve_app(answering(429, b"", "text/plain", **{"Retry-After": "30"}))
    failures = only_failures(await built(vendor, base_url).poll(fetcher, NOW))
    assert failures
    assert {(error.reason, error.rate_limited, error.retry_after) for error in failures} == {
        ("rate limit exceeded", True, 30.0)
    }


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_provider_built_with_a_shard_view_polls_only_the_units_it_owns(vendor: str) -> None:
    everything = built(vendor, "http://127.0.0.1:9").units()
    owned = everything[-1]
    sharded = built(vendor, "http://127.0.0.1:9", ShardView(owns_unit=lambda unit: unit == owned))
    assert sharded.active_units() == [owned]


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_provider_built_with_no_unit_of_this_shard_has_nothing_to_poll(vendor: str) -> None:
    assert built(vendor, "http://127.0.0.1:9", ShardView(owns_unit=lambda unit: False)).active_units() == []


class Fields(StrictModel):
    project: NonEmpty = "p"
    segment: PathSegment = "s"


@pytest.mark.parametrize("value", ["", "  "])
def test_a_blank_required_string_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="must not be empty"):
        Fields(project=value)


@pytest.mark.parametrize("value", ["a/b", "a?b", "a#b", "a%2Fb", "a b", "", 1.5, True])
def test_a_path_segment_that_could_change_the_url_is_refused(value: Any) -> None:
    with pytest.raises(ValidationError, match="must be a name or ID without"):
        Fields(segment=value)


def test_a_numeric_path_segment_is_refused_with_a_hint_to_quote_it() -> None:
    """Values are never converted between kinds (docs/configuration.md)."""
    with pytest.raises(ValidationError, match=r"must be a valid string \(write an ID in quotes\)"):
        Fields(segment=41976921163)
