"""NAVER Cloud VPE: the documented example, newest `logDate` whatever the order, the `timezone`
conversion and its warning, errors inside HTTP 200s, and a round trip through the simulator."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web

from exporter.config import ConfigError, parse_config
from exporter.demo.naver import PATH, NaverSimulator
from exporter.poll import PollResult
from exporter.providers.naver import Naver, NaverSettings, log_date_to_unix
from tests.conftest import FIXTURES, fixture_json

EXAMPLE = "naver/current_viewers_example.without_ellipsis_line.json"
EXAMPLE_NEWEST = datetime(2025, 10, 9, 7, 23, tzinfo=UTC).timestamp()


def provider(**keys: Any) -> Naver:
    settings = NaverSettings.model_validate(
        {"name": "n", "provider": "naver", "api_key": "k-secret", "project_id": "company-1", **keys}
    )
    return Naver(settings)


def point(count: Any, log_date: Any) -> dict[str, Any]:
    return {"currentViewerCnt": count, "logDate": log_date}


def body_of(*points: dict[str, Any]) -> dict[str, Any]:
    return {"code": 200, "message": "currentViewers (1m)", "result": list(points)}


def test_the_verbatim_example_differs_from_the_parsed_one_only_by_its_ellipsis_line() -> None:
    verbatim = (FIXTURES / "naver/current_viewers_example.verbatim.txt").read_text()
    with pytest.raises(json.JSONDecodeError):
        json.loads(verbatim)
    kept = [line for line in verbatim.splitlines(keepends=True) if line.strip() != "..."]
    assert len(kept) == len(verbatim.splitlines()) - 1
    assert "".join(kept) == (FIXTURES / EXAMPLE).read_text()


def test_documented_example_publishes_the_newest_point_read_in_seoul_time() -> None:
    result = PollResult()
    samples = provider().parse(fixture_json(EXAMPLE), EXAMPLE_NEWEST + 60, result)
    assert [(dict(s.labels), s.value) for s in samples] == [({"device": "PC,Mobile", "video_type": "VOD,LIVE"}, 0.0)]
    assert result.newest_timestamp == EXAMPLE_NEWEST
    assert result.rejected_points == 0


def test_the_newest_logdate_wins_whatever_the_order() -> None:
    points = [point(5, "2025-10-09 16:21:00"), point(7, "2025-10-09 16:23:00"), point(6, "2025-10-09 16:22:00")]
    for ordered in (points, points[::-1]):
        result = PollResult()
        [sample] = provider().parse(body_of(*ordered), EXAMPLE_NEWEST, result)
        assert (sample.value, result.newest_timestamp) == (7.0, EXAMPLE_NEWEST)


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("Asia/Seoul", datetime(2025, 10, 9, 7, 23, tzinfo=UTC)),
        ("UTC", datetime(2025, 10, 9, 16, 23, tzinfo=UTC)),
        ("America/New_York", datetime(2025, 10, 9, 20, 23, tzinfo=UTC)),
        ("Asia/Kolkata", datetime(2025, 10, 9, 10, 53, tzinfo=UTC)),
    ],
)
def test_logdate_is_read_as_wall_clock_time_in_the_configured_zone(zone: str, expected: datetime) -> None:
    assert log_date_to_unix("2025-10-09 16:23:00", ZoneInfo(zone)) == expected.timestamp()


def test_the_timezone_key_changes_the_published_freshness() -> None:
    result = PollResult()
    provider(timezone="UTC").parse(fixture_json(EXAMPLE), EXAMPLE_NEWEST, result)
    assert result.newest_timestamp == EXAMPLE_NEWEST + 9 * 3600


def test_unusable_points_are_counted_and_skipped() -> None:
    result = PollResult()
    body = body_of(
        point(3, "2025-10-09 16:20:00"),
        point(9, "2025-10-09 16:24"),
        point(9, "2025-10-09T16:25:00"),
        point(9, "2025-10-09 16:26:00.000"),
        point("9", "2025-10-09 16:27:00"),
        point(True, "2025-10-09 16:28:00"),
        point(None, "2025-10-09 16:29:00"),
        {"logDate": "2025-10-09 16:30:00"},
        "2025-10-09 16:31:00",
    )
    [sample] = provider().parse(body, EXAMPLE_NEWEST, result)
    assert sample.value == 3.0
    assert result.rejected_points == 8


def test_an_empty_result_list_is_a_success_that_publishes_nothing() -> None:
    assert provider().parse(body_of(), EXAMPLE_NEWEST, PollResult()) == []


@pytest.mark.parametrize(
    ("body", "reason", "code"),
    [
        (fixture_json("naver/error_no_version_information.json"), "4100: No version information.", "200"),
        ({"error": {"errorCode": "Unauthorized", "message": "Unauthorized"}}, "Unauthorized: Unauthorized", "200"),
        ({"code": 500, "message": "server busy", "result": []}, "code 500: server busy", "200"),
        (
            {"code": 200, "message": "currentViewers (1m)", "result": None},
            "code 200: currentViewers (1m) (no result list or object)",
            "invalid_body",
        ),
        (
            {"code": 200, "message": "currentViewers (1m)"},
            "code 200: currentViewers (1m) (no result list or object)",
            "invalid_body",
        ),
        (
            {"code": 200, "result": [], "error": {"errorCode": "4601", "message": "bad device"}},
            "4601: bad device",
            "200",
        ),
    ],
)
async def test_failures_inside_a_200_are_failed_polls_with_the_vendors_words(
    serve_app, fetcher, body: dict, reason: str, code: str
) -> None:
    """Errors the vendor states are counted as the 200 they came with; a body without the result
    list (a drifted shape) is counted as invalid_body."""

    async def viewers(request: web.Request) -> web.Response:
        return web.json_response(body)

    app = web.Application()
    app.router.add_get(PATH, viewers)
    result = await provider(base_url=await serve_app(app)).poll(fetcher, datetime.now(UTC))
    assert result.failures["total"].reason == reason
    assert result.samples == {}
    assert fetcher.observer_record.requests == [("current_viewers", code)]


async def test_request_sends_the_documented_headers_and_query(serve_app, fetcher) -> None:
    seen: list[tuple[str, str, str, str]] = []

    async def viewers(request: web.Request) -> web.Response:
        headers = request.headers
        seen.append((request.path, request.query_string, headers["x-api-key"], headers["x-project-id"]))
        return web.json_response(fixture_json(EXAMPLE))

    app = web.Application()
    app.router.add_get(PATH, viewers)
    base_url = await serve_app(app)
    assert (await provider(base_url=base_url).poll(fetcher, datetime.now(UTC))).ok
    result = await provider(base_url=base_url, device="Mobile", video_type="LIVE").poll(fetcher, datetime.now(UTC))
    assert seen == [
        (PATH, "device=PC,Mobile&videoType=VOD,LIVE", "k-secret", "company-1"),
        (PATH, "device=Mobile&videoType=LIVE", "k-secret", "company-1"),
    ]
    [sample] = result.samples["total"]
    assert dict(sample.labels) == {"device": "Mobile", "video_type": "LIVE"}


def naver_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "exporter.providers.naver"]


def test_a_newest_point_in_the_future_warns_once_naming_the_timezone_key(caplog: pytest.LogCaptureFixture) -> None:
    naver = provider(timezone="UTC")
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            naver.parse(fixture_json(EXAMPLE), EXAMPLE_NEWEST + 60, PollResult())
    [record] = naver_warnings(caplog)
    assert "`timezone`" in record.getMessage() and "in the future" in record.getMessage()
    assert (record.source, record.timezone) == ("n", "UTC")


def test_a_newest_point_hours_old_warns_too(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        provider().parse(fixture_json(EXAMPLE), EXAMPLE_NEWEST + 3 * 3600, PollResult())
    [record] = naver_warnings(caplog)
    assert "over an hour old" in record.getMessage()


def test_a_plausible_newest_point_is_quiet_and_rearms_the_warning(caplog: pytest.LogCaptureFixture) -> None:
    naver = provider()
    with caplog.at_level(logging.WARNING):
        naver.parse(fixture_json(EXAMPLE), EXAMPLE_NEWEST + 90, PollResult())
        assert naver_warnings(caplog) == []
        naver.parse(fixture_json(EXAMPLE), EXAMPLE_NEWEST + 3 * 3600, PollResult())
        naver.parse(fixture_json(EXAMPLE), EXAMPLE_NEWEST + 90, PollResult())
        naver.parse(fixture_json(EXAMPLE), EXAMPLE_NEWEST + 3 * 3600, PollResult())
    assert len(naver_warnings(caplog)) == 2


@pytest.mark.parametrize(
    ("keys", "line"),
    [
        ({"timezone": "Seoul"}, "timezone: must be an IANA time zone name such as Asia/Seoul or UTC"),
        ({"device": "Tablet"}, "device: must be one of PC,Mobile, PC, Mobile"),
        ({"video_type": "LIVE,VOD"}, "video_type: must be one of VOD,LIVE, VOD, LIVE"),
        ({"project_id": " "}, "project_id: must not be empty"),
    ],
)
def test_bad_keys_are_config_errors(keys: dict[str, str], line: str) -> None:
    source = {"name": "n", "provider": "naver", "api_key": "k-secret", "project_id": "c", **keys}
    with pytest.raises(ConfigError) as caught:
        parse_config({"sources": [source]}, "config.yaml", Path("."))
    assert caught.value.lines == [f'config.yaml: sources[0] "n": {line}']


def test_default_interval_is_one_minute_like_the_points() -> None:
    assert provider().default_interval() == 60


async def test_simulator_round_trip_lands_on_the_last_whole_minute(serve_app, fetcher) -> None:
    simulator = NaverSimulator(api_key="k-secret", project_id="company-1")
    base_url = await serve_app(simulator.app())
    result = await provider(base_url=base_url).poll(fetcher, datetime.now(UTC))
    assert result.ok, result.failures
    last_whole_minute = time.time() // 60 * 60 - 60
    assert result.newest_timestamp in (last_whole_minute, last_whole_minute - 60)


async def test_simulator_answers_sixty_one_minute_points_newest_first_in_seoul_time(serve_app, fetcher) -> None:
    simulator = NaverSimulator(api_key="k-secret", project_id="company-1", clock=lambda: EXAMPLE_NEWEST + 75)
    base_url = await serve_app(simulator.app())
    async with fetcher.get(
        "x", f"{base_url}{PATH}", headers={"x-api-key": "k-secret", "x-project-id": "company-1"}
    ) as answer:
        body = answer.json()
    assert (body["code"], body["message"]) == (200, "currentViewers (1m)")
    dates = [entry["logDate"] for entry in body["result"]]
    assert len(dates) == 60
    assert (dates[0], dates[1], dates[-1]) == ("2025-10-09 16:23:00", "2025-10-09 16:22:00", "2025-10-09 15:24:00")


async def test_simulator_refuses_a_wrong_key_inside_a_200(serve_app, fetcher) -> None:
    simulator = NaverSimulator(api_key="k-secret", project_id="company-1")
    base_url = await serve_app(simulator.app())
    result = await provider(base_url=base_url, api_key="wrong-key").poll(fetcher, datetime.now(UTC))
    assert result.failures["total"].reason == "Unauthorized: Unauthorized"
    assert fetcher.observer_record.requests == [("current_viewers", "200")]


async def test_simulator_fault_status_200_answers_the_documented_error_inside_a_200(serve_app, fetcher) -> None:
    simulator = NaverSimulator(api_key="k-secret", project_id="company-1")
    base_url = await serve_app(simulator.app())
    simulator.faults.fault = {"status": 200, "times": 1}
    naver = provider(base_url=base_url)
    failed = await naver.poll(fetcher, datetime.now(UTC))
    assert failed.failures["total"].reason == "4100: No version information."
    assert (await naver.poll(fetcher, datetime.now(UTC))).ok
