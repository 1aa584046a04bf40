"""LLS (SwiftFederation): signature V2, the documented examples, strict timestamps, echoed labels,
error bodies, and a round trip through the simulator that checks signatures with its own code."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from exporter.demo.lls import PATH, LlsSimulator, expected_signature, string_to_sign
from exporter.poll import WHOLE_SOURCE, PollResult, ShardView
from exporter.providers.lls import Lls, LlsSettings, Query, parse_sfd_time, sign_v2, signed_uri
from tests.conftest import fixture_json

KEY_ID = "O80ybSq26xUE383u"
SECRET = "q738531SV3s0yFC2I3p7QJ49og37yIat"
VECTOR_HEADERS = {
    "Host": "open-api.swiftfederation.com",
    "X-SFD-Date": "20250806T045529Z",
    "X-SFD-FZone": "SG",
    "X-SFD-Nonce": "15121",
    "X-SFD-Signature-Version": "2",
}
VECTOR_SIGNATURE = "3ebba5b79c247db566d957638ecc9d085d4805a957f84ad8114af721635a41a7"
EXAMPLE_NEWEST = datetime(2025, 5, 18, 17, 30, tzinfo=UTC).timestamp()
RANGE_EXAMPLE_NEWEST = datetime(2025, 5, 18, 17, 55, tzinfo=UTC).timestamp()


def provider(shard: ShardView = WHOLE_SOURCE, **keys: Any) -> Lls:
    settings = LlsSettings.model_validate(
        {
            "name": "l",
            "provider": "lls",
            "access_key_id": KEY_ID,
            "access_key_secret": SECRET,
            "domain": "live.example.com",
            **keys,
        }
    )
    return Lls(settings, shard)


def labels_and_values(samples: list) -> list[tuple[dict[str, str], float]]:
    return [(dict(sample.labels), sample.value) for sample in samples]


def test_signature_reproduces_the_documented_test_vector() -> None:
    assert sign_v2(SECRET, "GET", "/v1.1/customer/35394", VECTOR_HEADERS, KEY_ID) == VECTOR_SIGNATURE


def test_signature_covers_only_host_and_x_sfd_headers_whatever_their_case() -> None:
    headers = {name.lower(): value for name, value in reversed(VECTOR_HEADERS.items())}
    headers["Content-Type"] = "application/json; charset=utf-8"
    headers["User-Agent"] = "anything"
    assert sign_v2(SECRET, "get", "/v1.1/customer/35394", headers, KEY_ID) == VECTOR_SIGNATURE


def test_signature_changes_with_any_signed_header() -> None:
    assert sign_v2(SECRET, "GET", "/v1.1/customer/35394", {**VECTOR_HEADERS, "X-SFD-Nonce": "15122"}, KEY_ID) != (
        VECTOR_SIGNATURE
    )


def test_signed_uri_is_the_path_without_the_query_string() -> None:
    assert signed_uri(PATH, {"domain": "live.example.com", "app": "demoapp"}) == PATH


def test_realtime_example_publishes_its_point_with_the_echoed_labels() -> None:
    result = PollResult()
    samples = provider().parse(fixture_json("lls/query_realtime_example.json"), Query(None, None), result)
    assert labels_and_values(samples) == [
        (
            {"domain": "live.example.com", "app": "demoapp", "stream": "all", "region": "all", "protocol": "all"},
            1283.0,
        )
    ]
    assert result.newest_timestamp == EXAMPLE_NEWEST
    assert result.rejected_points == 0


def test_time_range_example_skips_its_malformed_last_timestamp() -> None:
    result = PollResult()
    samples = provider(app="demoapp").parse(
        fixture_json("lls/query_time_range_example.json"), Query(None, None), result
    )
    assert [sample.value for sample in samples] == [2873.0]
    assert result.newest_timestamp == RANGE_EXAMPLE_NEWEST
    assert result.rejected_points == 1


@pytest.mark.parametrize(
    "text",
    [
        "20250518T18000Z",
        "20250518T180000",
        "2025-05-18T18:00:00Z",
        "20251318T000000Z",
        "20250518T180000Z\n",
        "",
        None,
        1,
    ],
)
def test_timestamps_that_are_not_exactly_yyyymmddthhmmssz_are_rejected(text: Any) -> None:
    assert parse_sfd_time(text) is None


def test_a_well_formed_timestamp_is_utc() -> None:
    assert parse_sfd_time("20250518T173000Z") == EXAMPLE_NEWEST


def test_points_with_unusable_values_are_counted_and_never_become_newest() -> None:
    body = {
        "domain": "live.example.com",
        "data": [
            {"timestamp": "20250518T173000Z", "concurrentViewers": 10},
            {"timestamp": "20250518T173500Z", "concurrentViewers": "11"},
            {"timestamp": "20250518T174000Z", "concurrentViewers": True},
            {"timestamp": "20250518T174500Z"},
            "20250518T175000Z",
        ],
    }
    result = PollResult()
    samples = provider().parse(body, Query(None, None), result)
    assert [sample.value for sample in samples] == [10.0]
    assert result.rejected_points == 4


def test_labels_fall_back_to_the_request_where_the_answer_omits_them() -> None:
    body = {"domain": "live.example.com", "data": [{"timestamp": "20250518T173000Z", "concurrentViewers": 5}]}
    lls = provider(app="demoapp", streams=["main"], protocol="ll-hls", region="SG")
    samples = lls.parse(body, Query("main", "ll-hls"), PollResult())
    assert labels_and_values(samples) == [
        ({"domain": "live.example.com", "app": "demoapp", "stream": "main", "region": "SG", "protocol": "ll-hls"}, 5.0)
    ]


def test_the_answers_echo_wins_over_the_request() -> None:
    body = {
        "domain": "cdn.example.com",
        "app": "other",
        "stream": "main",
        "protocol": "hls/dash",
        "data": [{"timestamp": "20250518T173000Z", "concurrentViewers": 5}],
    }
    [sample] = provider(app="demoapp").parse(body, Query("main", "hls/dash"), PollResult())
    assert dict(sample.labels)["domain"] == "cdn.example.com"
    assert dict(sample.labels)["app"] == "other"


def test_an_answer_without_usable_points_publishes_nothing() -> None:
    result = PollResult()
    assert provider().parse({"domain": "live.example.com", "data": []}, Query(None, None), result) == []
    assert result.newest_timestamp is None


def test_window_covers_the_newest_point_and_the_one_before_it() -> None:
    now = datetime(2025, 5, 18, 17, 57, 12, tzinfo=UTC).timestamp()
    assert provider().window(now) == ("20250518T175000Z", "20250518T175712Z")


def test_one_unit_per_stream_and_protocol() -> None:
    lls = provider(streams=["main", "backstage"], protocol=["ll-hls", "hls/dash"])
    assert lls.units() == [
        "stream=main,protocol=ll-hls",
        "stream=main,protocol=hls/dash",
        "stream=backstage,protocol=ll-hls",
        "stream=backstage,protocol=hls/dash",
    ]
    assert provider(protocol="http-flv").units() == ["protocol=http-flv"]
    assert provider().units() == ["all"]


def test_sharding_polls_only_the_owned_units() -> None:
    lls = provider(ShardView(owns_unit=lambda unit: "backstage" in unit), streams=["main", "backstage"])
    assert lls.active_units() == ["stream=backstage"]


def test_all_sources_on_one_access_key_share_one_rate_limit_key() -> None:
    assert provider().rate_limit_key() == provider(domain="other.example.com").rate_limit_key() == KEY_ID
    assert [(limit.requests, limit.per_seconds) for limit in Lls.rate_limits] == [(100, 60), (1000, 3600)]


def app_answering(handler: Any) -> web.Application:
    app = web.Application()
    app.router.add_get(PATH, handler)
    return app


async def test_request_carries_the_documented_query_and_fresh_signature_headers(serve_app, fetcher) -> None:
    seen: list[tuple[str, dict[str, str], dict[str, str]]] = []

    async def viewers(request: web.Request) -> web.Response:
        seen.append((request.path, dict(request.query), dict(request.headers)))
        return web.json_response(fixture_json("lls/query_realtime_example.json"))

    base_url = await serve_app(app_answering(viewers))
    lls = provider(base_url=base_url, app="demoapp", streams=["main"], region="SG", protocol="hls/dash")
    before = time.time()
    assert (await lls.poll(fetcher, datetime.now(UTC))).ok
    assert (await lls.poll(fetcher, datetime.now(UTC))).ok
    (path, query, headers), (_, _, second) = seen
    assert path == PATH
    assert set(query) == {"domain", "app", "stream", "region", "protocol", "started", "ended"}
    assert (query["domain"], query["app"], query["stream"], query["region"], query["protocol"]) == (
        "live.example.com",
        "demoapp",
        "main",
        "SG",
        "hls/dash",
    )
    assert re.fullmatch(r"\d{8}T\d{6}Z", query["started"]) and re.fullmatch(r"\d{8}T\d{6}Z", query["ended"])
    assert abs(parse_sfd_time(headers["X-SFD-Date"]) - before) < 5
    assert re.fullmatch(r"\d{5}", headers["X-SFD-Nonce"])
    assert headers["X-SFD-Signature-Version"] == "2"
    assert headers["X-SFD-FZone"] == "SG"
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert headers["Host"] == base_url.removeprefix("http://")
    assert re.fullmatch(rf"HMAC-SHA256 {KEY_ID}:[0-9a-f]{{64}}", headers["Authorization"])
    assert SECRET not in str(headers) + str(query)
    assert (second["X-SFD-Nonce"], second["Authorization"]) != (headers["X-SFD-Nonce"], headers["Authorization"])


async def test_headers_are_signed_when_the_request_leaves_after_a_rate_limit_wait(serve_app, fetcher) -> None:
    dates: list[str] = []

    async def viewers(request: web.Request) -> web.Response:
        dates.append(request.headers["X-SFD-Date"])
        return web.json_response({"domain": "live.example.com", "data": []})

    lls = provider(base_url=await serve_app(app_answering(viewers)))
    lls.clock = lambda: 1_000_000.0

    class WaitsTwoHours:
        def delay(self) -> float:
            return 7200.0

        async def acquire(self) -> float:
            lls.clock = lambda: 1_007_200.0
            return 7200.0

    fetcher.limiter = WaitsTwoHours()
    await lls.poll(fetcher, datetime.now(UTC))
    assert dates == ["19700112T154640Z"]


async def test_documented_error_body_becomes_a_failed_poll_with_code_message_and_trace_id(serve_app, fetcher) -> None:
    async def viewers(request: web.Request) -> web.Response:
        return web.json_response(
            fixture_json("lls/error_invalid_timestamp.json"), status=400, headers={"x-sfd-trace-id": "t-42"}
        )

    result = await provider(base_url=await serve_app(app_answering(viewers))).poll(fetcher, datetime.now(UTC))
    error = result.failures["all"]
    assert error.reason == "LLS.Analytics.InvalidTimestamp: Timestamp is empty or invalid. (x-sfd-trace-id t-42)"
    assert error.status == 400
    assert fetcher.observer_record.requests == [("concurrent_viewers", "400")]


async def test_signature_expired_says_to_check_the_clock(serve_app, fetcher) -> None:
    async def viewers(request: web.Request) -> web.Response:
        return web.json_response({"code": "Signature.Expired", "message": "expired"}, status=400)

    result = await provider(base_url=await serve_app(app_answering(viewers))).poll(fetcher, datetime.now(UTC))
    assert result.failures["all"].reason == (
        "Signature.Expired: expired (check this host's clock: X-SFD-Date must be within 1 hour of the vendor's)"
    )


async def test_signature_not_match_counts_as_rejected_credentials(serve_app, fetcher) -> None:
    async def viewers(request: web.Request) -> web.Response:
        return web.json_response({"code": "Signature.NotMatch", "message": "no"}, status=401)

    result = await provider(base_url=await serve_app(app_answering(viewers))).poll(fetcher, datetime.now(UTC))
    assert result.failures["all"].credentials_rejected


async def test_429_is_rate_limited_with_its_retry_after(serve_app, fetcher) -> None:
    async def viewers(request: web.Request) -> web.Response:
        return web.Response(status=429, headers={"Retry-After": "30"})

    result = await provider(base_url=await serve_app(app_answering(viewers))).poll(fetcher, datetime.now(UTC))
    error = result.failures["all"]
    assert (error.rate_limited, error.retry_after, error.reason) == (True, 30.0, "rate limit exceeded")


async def test_a_200_without_a_data_list_is_an_invalid_body(serve_app, fetcher) -> None:
    async def viewers(request: web.Request) -> web.Response:
        return web.json_response({"domain": "live.example.com"})

    result = await provider(base_url=await serve_app(app_answering(viewers))).poll(fetcher, datetime.now(UTC))
    assert result.failures["all"].code == "invalid_body"
    assert fetcher.observer_record.requests == [("concurrent_viewers", "invalid_body")]


def simulated(**keys: Any) -> tuple[LlsSimulator, dict[str, Any]]:
    simulator = LlsSimulator(access_key_id=KEY_ID, access_key_secret=SECRET, malformed_every=0)
    return simulator, {"app": "demoapp", **keys}


async def test_simulator_round_trip_verifies_the_signature_and_answers_every_unit(serve_app, fetcher) -> None:
    simulator, keys = simulated()
    base_url = await serve_app(simulator.app())
    lls = provider(base_url=base_url, streams=["main", "backstage"], protocol=["ll-hls", "hls/dash"], **keys)
    result = await lls.poll(fetcher, datetime.now(UTC))
    assert result.ok, result.failures
    assert sorted(result.samples) == sorted(lls.units())
    [sample] = result.samples["stream=main,protocol=ll-hls"]
    assert dict(sample.labels) == {
        "domain": "live.example.com",
        "app": "demoapp",
        "stream": "main",
        "region": "all",
        "protocol": "ll-hls",
    }
    assert time.time() - result.newest_timestamp < 300


async def test_simulator_refuses_a_wrong_secret_with_signature_not_match(serve_app, fetcher) -> None:
    simulator, keys = simulated()
    base_url = await serve_app(simulator.app())
    result = await provider(base_url=base_url, access_key_secret="not-the-secret", **keys).poll(
        fetcher, datetime.now(UTC)
    )
    error = result.failures["all"]
    assert error.status == 401
    assert re.fullmatch(r"Signature\.NotMatch: .* \(x-sfd-trace-id [0-9a-f]{32}\)", error.reason)


async def test_simulator_refuses_a_date_over_an_hour_old_with_signature_expired(serve_app, fetcher) -> None:
    simulator, keys = simulated()
    base_url = await serve_app(simulator.app())
    lls = provider(base_url=base_url, **keys)
    lls.clock = lambda: time.time() - 3700
    error = (await lls.poll(fetcher, datetime.now(UTC))).failures["all"]
    assert error.status == 400
    assert error.reason.startswith("Signature.Expired: ")
    assert "check this host's clock" in error.reason


async def test_simulator_answers_429_once_the_minute_budget_is_spent(serve_app, fetcher) -> None:
    simulator, keys = simulated()
    base_url = await serve_app(simulator.app())
    for _ in range(100):
        assert simulator.check_rate(KEY_ID) is None
    error = (await provider(base_url=base_url, **keys).poll(fetcher, datetime.now(UTC))).failures["all"]
    assert error.rate_limited
    assert 59 <= error.retry_after <= 60
    assert error.reason.startswith("RateLimit.Exceeded: ")


async def test_simulator_sometimes_sends_a_malformed_timestamp_that_is_skipped(serve_app, fetcher) -> None:
    simulator = LlsSimulator(access_key_id=KEY_ID, access_key_secret=SECRET, malformed_every=1)
    base_url = await serve_app(simulator.app())
    result = await provider(base_url=base_url, streams=["main"]).poll(fetcher, datetime.now(UTC))
    assert result.ok
    assert result.rejected_points == 1
    assert result.newest_timestamp <= time.time()


async def test_simulator_fault_injection_answers_with_an_lls_error_body(serve_app, fetcher) -> None:
    simulator, keys = simulated()
    base_url = await serve_app(simulator.app())
    simulator.faults.fault = {"status": 500, "times": 1}
    lls = provider(base_url=base_url, **keys)
    failed = await lls.poll(fetcher, datetime.now(UTC))
    assert failed.failures["all"].reason.startswith("InternalError: Internal server error. (x-sfd-trace-id ")
    assert (await lls.poll(fetcher, datetime.now(UTC))).ok


def test_simulator_checks_signatures_with_its_own_code_on_the_documented_vector() -> None:
    to_sign = string_to_sign("GET", "/v1.1/customer/35394", VECTOR_HEADERS, KEY_ID, "")
    assert expected_signature(SECRET, to_sign) == VECTOR_SIGNATURE


def test_simulator_rate_windows_slide() -> None:
    now = [0.0]
    simulator = LlsSimulator(access_key_id=KEY_ID, access_key_secret=SECRET, clock=lambda: now[0])
    for second in range(100):
        now[0] = second * 0.5
        assert simulator.check_rate(KEY_ID) is None
    refused = simulator.check_rate(KEY_ID)
    assert refused is not None and (refused.status, refused.headers["Retry-After"]) == (429, "11")
    now[0] = 60.0
    assert simulator.check_rate(KEY_ID) is None
