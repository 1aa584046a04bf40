"""Cloudflare RealtimeKit: the documented request shape, example body, failure bodies, day parts."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web

from exporter.demo.cloudflare import LIMIT_REQUESTS, CloudflareSimulator
from exporter.poll import PollResult
from exporter.providers.cloudflare import Cloudflare, CloudflareSettings
from tests.conftest import fixture_json

NOW = datetime(2023, 7, 15, 18, 30, tzinfo=UTC)
ROUTE = "/accounts/{account_id}/realtime/kit/{app_id}/analytics/livestreams/daywise"
TOKEN = "Sn3lZJTBX6kkg7OdcBUAxOO963GEIyGQqnFTOFYY"


def provider(**keys: Any) -> Cloudflare:
    settings = CloudflareSettings.model_validate(
        {
            "name": "cf",
            "provider": "cloudflare",
            "api_token": TOKEN,
            "account_id": "023e105f4ecef8ad9ca31a8372d0c353",
            "app_id": "app_id",
            **keys,
        }
    )
    return Cloudflare(settings)


def triples(samples: list[Any]) -> list[tuple[str, float, str]]:
    return [(s.name, s.value, s.part) for s in samples]


def fake_vendor(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> tuple[web.Application, list]:
    seen: list[web.Request] = []

    async def daywise(request: web.Request) -> web.Response:
        seen.append(request)
        return web.json_response(body, status=status, headers=headers)

    app = web.Application()
    app.router.add_get(ROUTE, daywise)
    return app, seen


def test_documented_example_becomes_one_counter_part_per_total_of_its_day() -> None:
    result = PollResult()
    data = fixture_json("cloudflare/daywise_example.json")["data"]
    samples = provider().parse(data, NOW, result)
    assert triples(samples) == [
        ("livestream_sessions_total", 4.0, "2023-07-15"),
        ("livestream_ingest_seconds_total", 531.0, "2023-07-15"),
        ("livestream_viewer_seconds_total", 116.0, "2023-07-15"),
    ]
    assert all(s.labels == () for s in samples)
    assert result.rejected_points == 0
    assert result.newest_timestamp == NOW.timestamp()


def test_today_without_an_entry_yields_zero_parts_so_the_counters_exist() -> None:
    data = fixture_json("cloudflare/daywise_example.json")["data"]
    later = datetime(2023, 7, 16, 0, 5, tzinfo=UTC)
    samples = provider().parse(data, later, PollResult())
    assert triples(samples)[3:] == [
        ("livestream_sessions_total", 0.0, "2023-07-16"),
        ("livestream_ingest_seconds_total", 0.0, "2023-07-16"),
        ("livestream_viewer_seconds_total", 0.0, "2023-07-16"),
    ]


def test_freshness_of_a_finished_day_is_its_end() -> None:
    result = PollResult()
    provider().parse([{"count": 1, "date": "2023-07-14"}], NOW, result)
    assert result.newest_timestamp == datetime(2023, 7, 15, tzinfo=UTC).timestamp()


def test_entry_with_null_date_is_rejected_and_the_others_kept() -> None:
    result = PollResult()
    samples = provider().parse(
        [{"count": 9, "date": None, "total_ingest_seconds": 9}, {"count": 2, "date": "2023-07-15"}], NOW, result
    )
    assert ("livestream_sessions_total", 2.0, "2023-07-15") in triples(samples)
    assert all(s.value != 9 for s in samples)
    assert result.rejected_points == 1


def test_missing_total_gives_no_part_and_a_malformed_one_is_rejected() -> None:
    result = PollResult()
    samples = provider().parse(
        [{"count": 3, "date": "2023-07-15", "total_ingest_seconds": "lots", "total_viewer_seconds": -1}], NOW, result
    )
    assert triples(samples)[0] == ("livestream_sessions_total", 3.0, "2023-07-15")
    assert [s.name for s in samples if s.value != 0] == ["livestream_sessions_total"]
    assert result.rejected_points == 1


def test_iso_timestamp_dates_count_for_their_day() -> None:
    samples = provider().parse([{"count": 1, "date": "2023-07-14T00:00:00.000Z"}], NOW, PollResult())
    assert samples[0].part == "2023-07-14"


async def test_request_has_documented_path_bearer_token_and_window_from_yesterday_midnight_utc(
    serve_app, fetcher
) -> None:
    app, seen = fake_vendor(fixture_json("cloudflare/daywise_example.json"))
    base_url = await serve_app(app)
    result = await provider(base_url=base_url, filters="region=eu").poll(fetcher, NOW)
    assert result.ok, result.failures
    [request] = seen
    assert (
        request.path == "/accounts/023e105f4ecef8ad9ca31a8372d0c353/realtime/kit/app_id/analytics/livestreams/daywise"
    )
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert dict(request.query) == {
        "start_time": str(int(datetime(2023, 7, 14, tzinfo=UTC).timestamp())),
        "end_time": str(int(NOW.timestamp())),
        "filters": "region=eu",
    }
    assert fetcher.observer_record.requests == [("livestreams_daywise", "200")]


async def test_no_filters_key_is_sent_unless_configured(serve_app, fetcher) -> None:
    app, seen = fake_vendor(fixture_json("cloudflare/daywise_example.json"))
    await provider(base_url=await serve_app(app)).poll(fetcher, NOW)
    assert set(seen[0].query) == {"start_time", "end_time"}


async def test_success_false_is_a_failed_poll_even_with_http_200(serve_app, fetcher) -> None:
    body = {"success": False, "errors": [{"code": 10000, "message": "Authentication error"}], "result": None}
    app, _ = fake_vendor(body, status=200)
    result = await provider(base_url=await serve_app(app)).poll(fetcher, NOW)
    assert result.failures["daywise"].reason == "10000: Authentication error"
    assert not result.samples


async def test_documented_429_body_is_a_rate_limited_failure_with_retry_after(serve_app, fetcher) -> None:
    app, _ = fake_vendor(fixture_json("cloudflare/rate_limited_429.json"), status=429, headers={"Retry-After": "300"})
    result = await provider(base_url=await serve_app(app)).poll(fetcher, NOW)
    error = result.failures["daywise"]
    assert error.reason == "971: Please wait and consider throttling your request speed"
    assert error.rate_limited and error.retry_after == 300
    assert fetcher.observer_record.rate_limited_count == 1


async def test_answer_without_data_list_is_an_invalid_body(serve_app, fetcher) -> None:
    app, _ = fake_vendor({"success": True})
    result = await provider(base_url=await serve_app(app)).poll(fetcher, NOW)
    assert result.failures["daywise"].code == "invalid_body"
    assert fetcher.observer_record.requests == [("livestreams_daywise", "invalid_body")]


async def test_window_reaches_back_to_the_last_covered_day_after_a_restart(serve_app, fetcher) -> None:
    app, seen = fake_vendor(fixture_json("cloudflare/daywise_example.json"))
    cloudflare = provider(base_url=await serve_app(app))
    cloudflare.restore_state({"covered_day": "2023-07-10"})
    await cloudflare.poll(fetcher, NOW)
    assert seen[0].query["start_time"] == str(int(datetime(2023, 7, 10, tzinfo=UTC).timestamp()))
    assert cloudflare.export_state() == {"covered_day": "2023-07-15"}


def test_catch_up_window_is_capped_at_31_days() -> None:
    cloudflare = provider()
    cloudflare.restore_state({"covered_day": "2020-01-01"})
    assert cloudflare.first_day(date(2023, 7, 15)) == date(2023, 6, 14)


async def test_failed_poll_does_not_move_the_covered_day(serve_app, fetcher) -> None:
    app, _ = fake_vendor({"success": False, "errors": []}, status=500)
    cloudflare = provider(base_url=await serve_app(app))
    cloudflare.restore_state({"covered_day": "2023-07-12"})
    await cloudflare.poll(fetcher, NOW)
    assert cloudflare.export_state() == {"covered_day": "2023-07-12"}


async def test_simulator_round_trip_gives_yesterday_and_today(serve_app, fetcher) -> None:
    simulator = CloudflareSimulator(api_token="tok-1-abcdef", account_id="acc", app_id="app")
    base_url = await serve_app(simulator.app())
    now = datetime.now(UTC)
    result = await provider(base_url=base_url, api_token="tok-1-abcdef", account_id="acc", app_id="app").poll(
        fetcher, now
    )
    assert result.ok, result.failures
    parts = {s.part for s in result.samples["daywise"]}
    assert len(parts) == 2
    yesterday_sessions = [
        s.value for s in result.samples["daywise"] if s.name == "livestream_sessions_total" and s.part == min(parts)
    ]
    assert yesterday_sessions == [12.0]


async def test_simulator_rejects_a_wrong_token_with_the_v4_failure_body(serve_app, fetcher) -> None:
    simulator = CloudflareSimulator(api_token="tok-1-abcdef", account_id="acc", app_id="app")
    base_url = await serve_app(simulator.app())
    result = await provider(base_url=base_url, api_token="other-token", account_id="acc", app_id="app").poll(
        fetcher, NOW
    )
    error = result.failures["daywise"]
    assert (error.status, error.reason) == (403, "10000: Authentication error")
    assert error.credentials_rejected


async def test_simulator_answers_the_documented_429_over_1200_requests_in_5_minutes(serve_app, fetcher) -> None:
    simulator = CloudflareSimulator(
        api_token="tok-1-abcdef", account_id="acc", app_id="app", clock=lambda: 1_700_000_000.0
    )
    base_url = await serve_app(simulator.app())
    for _ in range(LIMIT_REQUESTS):
        assert not simulator._rate_limited(1_700_000_000.0)
    async with fetcher.get(
        "x",
        f"{base_url}/accounts/acc/realtime/kit/app/analytics/livestreams/daywise",
        headers={"Authorization": "Bearer tok-1-abcdef"},
    ) as answer:
        assert answer.status == 429
        assert answer.json() == fixture_json("cloudflare/rate_limited_429.json")
        assert answer.retry_after == 300


async def test_simulator_fault_injection_uses_cloudflare_failure_bodies(serve_app, fetcher) -> None:
    simulator = CloudflareSimulator(api_token="tok-1-abcdef", account_id="acc", app_id="app")
    base_url = await serve_app(simulator.app())
    simulator.faults.fault = {"status": 503, "times": 1}
    cloudflare = provider(base_url=base_url, api_token="tok-1-abcdef", account_id="acc", app_id="app")
    failed = await cloudflare.poll(fetcher, datetime.now(UTC))
    assert failed.failures["daywise"].reason == "10002: Service unavailable"
    assert (await cloudflare.poll(fetcher, datetime.now(UTC))).ok
