"""Gcore: the documented request shape, example body, closed-bucket rule and error bodies."""

from __future__ import annotations

import gc
import math
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from exporter.demo.gcore import GcoreSimulator
from exporter.poll import PollResult
from exporter.providers.gcore import Gcore, GcoreSettings, newest_closed_bucket
from tests.conftest import fixture_json

EXAMPLE_LAST_TS = 1640995610


def provider(**keys: Any) -> Gcore:
    settings = GcoreSettings.model_validate({"name": "g", "provider": "gcore", "api_key": "12$secret", **keys})
    return Gcore(settings)


def test_documented_example_publishes_newest_closed_bucket() -> None:
    result = PollResult()
    now = EXAMPLE_LAST_TS + 60
    samples = provider().parse(fixture_json("gcore/stream_stat_example.json"), "all", now, result)
    assert [(s.name, dict(s.labels), s.value) for s in samples] == [
        ("livestream_unique_viewers", {"client": "123", "stream": "all", "granularity": "1m"}, 20.0)
    ]
    assert result.newest_timestamp == EXAMPLE_LAST_TS


def test_bucket_is_closed_exactly_when_start_plus_granularity_reaches_now() -> None:
    points = [[1000, 5], [1060, 7]]
    assert newest_closed_bucket(points, 60, 1120)[0] == (1060.0, 7.0)
    assert newest_closed_bucket(points, 60, 1119)[0] == (1000.0, 5.0)


def test_open_bucket_alone_publishes_nothing() -> None:
    assert newest_closed_bucket([[1000, 5]], 60, 1059) == (None, 0)


def test_malformed_points_are_counted_and_skipped() -> None:
    newest, rejected = newest_closed_bucket([[1000, 5], ["x", 1], [1060], None, [1060, True]], 60, 2000)
    assert newest == (1000.0, 5.0)
    assert rejected == 4


def test_a_count_no_viewer_figure_can_be_is_counted_and_skipped() -> None:
    """Python's decoder takes `NaN`, `Infinity` and `1e400`; none is a count, nor is a negative one."""
    points = [[1000, 5], [1060, math.nan], [1060, math.inf], [1060, -3], [math.inf, 7]]
    newest, rejected = newest_closed_bucket(points, 60, 2000)
    assert newest == (1000.0, 5.0)
    assert rejected == 4


def test_window_covers_two_closed_buckets_and_the_open_one() -> None:
    now = datetime(2024, 7, 1, 12, 30, 20, tzinfo=UTC).timestamp()
    params = provider(granularity="5m", client_user_id=7).params(42, now)
    assert params == {
        "from": "2024-07-01T12:20:00Z",
        "to": "2024-07-01T12:30:20Z",
        "granularity": "5m",
        "stream_id": "42",
        "client_user_id": "7",
    }


def test_default_interval_follows_granularity_up_to_fifteen_minutes() -> None:
    assert provider(granularity="1m").default_interval() == 60
    assert provider(granularity="15m").default_interval() == 900
    assert provider(granularity="1d").default_interval() == 900


async def test_poll_sends_documented_auth_header_and_one_request_per_stream(serve_app, fetcher) -> None:
    seen: list[tuple[str, dict[str, str]]] = []

    async def viewers(request: web.Request) -> web.Response:
        seen.append((request.headers["Authorization"], dict(request.query)))
        return web.json_response(fixture_json("gcore/stream_stat_example.json"))

    app = web.Application()
    app.router.add_get("/streaming/statistics/stream/viewers", viewers)
    base_url = await serve_app(app)
    result = await provider(base_url=base_url, stream_ids=[1, 2]).poll(fetcher, datetime.now(UTC))
    assert result.ok
    assert sorted(result.samples) == ["1", "2"]
    assert {auth for auth, _ in seen} == {"APIKey 12$secret"}
    assert sorted(query["stream_id"] for _, query in seen) == ["1", "2"]
    assert all({"from", "to", "granularity"} <= set(query) for _, query in seen)


async def test_documented_400_body_becomes_failed_poll_with_its_reason(serve_app, fetcher) -> None:
    async def viewers(request: web.Request) -> web.Response:
        return web.json_response(fixture_json("gcore/error_bad_request.json"), status=400)

    app = web.Application()
    app.router.add_get("/streaming/statistics/stream/viewers", viewers)
    result = await provider(base_url=await serve_app(app)).poll(fetcher, datetime.now(UTC))
    assert not result.ok
    error = result.failures["all"]
    assert error.reason == "from: query param is not set"
    assert error.status == 400
    assert fetcher.observer_record.requests == [("stream_viewers", "400")]


async def test_documented_500_body_becomes_failed_poll(serve_app, fetcher) -> None:
    async def viewers(request: web.Request) -> web.Response:
        return web.json_response(fixture_json("gcore/error_internal_server.json"), status=500)

    app = web.Application()
    app.router.add_get("/streaming/statistics/stream/viewers", viewers)
    result = await provider(base_url=await serve_app(app)).poll(fetcher, datetime.now(UTC))
    assert result.failures["all"].reason == "internal server error"


async def test_html_answer_counts_as_invalid_body(serve_app, fetcher) -> None:
    async def viewers(request: web.Request) -> web.Response:
        return web.Response(text="<html>maintenance</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/streaming/statistics/stream/viewers", viewers)
    result = await provider(base_url=await serve_app(app)).poll(fetcher, datetime.now(UTC))
    assert result.failures["all"].code == "invalid_body"
    assert fetcher.observer_record.requests == [("stream_viewers", "invalid_body")]


async def test_simulator_round_trip(serve_app, fetcher) -> None:
    simulator = GcoreSimulator(api_key="77$demo-key")
    base_url = await serve_app(simulator.app())
    result = await provider(base_url=base_url, api_key="77$demo-key", stream_ids=[101]).poll(fetcher, datetime.now(UTC))
    assert result.ok, result.failures
    [sample] = result.samples["101"]
    assert sample.value > 0


async def test_simulator_rejects_a_bearer_token(serve_app, fetcher) -> None:
    simulator = GcoreSimulator(api_key="77$demo-key")
    base_url = await serve_app(simulator.app())
    async with fetcher.get(
        "x", f"{base_url}/streaming/statistics/stream/viewers", headers={"Authorization": "Bearer 77$demo-key"}
    ) as answer:
        assert answer.status == 401


async def test_simulator_answers_documented_400_without_from_and_to(serve_app, fetcher) -> None:
    simulator = GcoreSimulator(api_key="77$demo-key")
    base_url = await serve_app(simulator.app())
    async with fetcher.get(
        "x", f"{base_url}/streaming/statistics/stream/viewers", headers={"Authorization": "APIKey 77$demo-key"}
    ) as answer:
        assert answer.status == 400
        assert answer.json() == {
            "data": [],
            "errors": ["from: query param is not set", "to: query param is not set"],
        }


async def test_simulator_fault_injection_answers_with_the_documented_500_body(serve_app, fetcher) -> None:
    simulator = GcoreSimulator(api_key="77$demo-key")
    base_url = await serve_app(simulator.app())
    simulator.faults.fault = {"status": 500, "times": 1}
    gcore = provider(base_url=base_url, api_key="77$demo-key", stream_ids=[101])
    failed = await gcore.poll(fetcher, datetime.now(UTC))
    assert failed.failures["101"].reason == "internal server error"
    recovered = await gcore.poll(fetcher, datetime.now(UTC))
    assert recovered.ok


class Recorder:
    """A Gcore stand-in that answers every request with `points` and records the queries."""

    def __init__(self, points: list[list[int]]) -> None:
        self.points = points
        self.clients = [123]
        self.queries: list[dict[str, str]] = []

    def app(self) -> web.Application:
        async def viewers(request: web.Request) -> web.Response:
            self.queries.append(dict(request.query))
            return web.json_response([{"client": c, "metrics": {"streams": self.points}} for c in self.clients])

        app = web.Application()
        app.router.add_get("/streaming/statistics/stream/viewers", viewers)
        return app


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2024, 7, 1, hh, mm, ss, tzinfo=UTC)


def ts(hh: int, mm: int) -> int:
    return int(at(hh, mm).timestamp())


async def test_next_poll_starts_at_the_newest_bucket_not_yet_seen_closed(serve_app, fetcher) -> None:
    vendor = Recorder([[ts(12, 28), 5], [ts(12, 29), 7], [ts(12, 30), 1]])
    gcore = provider(base_url=await serve_app(vendor.app()), stream_ids=[42])
    await gcore.poll(fetcher, at(12, 30, 20))
    vendor.points = [[ts(12, 30), 9], [ts(12, 31), 2]]
    second = await gcore.poll(fetcher, at(12, 31, 20))
    assert [q["from"] for q in vendor.queries] == ["2024-07-01T12:28:00Z", "2024-07-01T12:30:00Z"]
    assert [s.value for s in second.samples["42"]] == [9.0]


async def test_poll_without_a_newer_closed_bucket_keeps_publishing_the_newest_seen(serve_app, fetcher) -> None:
    vendor = Recorder([[ts(12, 28), 5], [ts(12, 29), 7], [ts(12, 30), 1]])
    gcore = provider(base_url=await serve_app(vendor.app()), stream_ids=[42])
    await gcore.poll(fetcher, at(12, 30, 20))
    vendor.points = [[ts(12, 30), 3]]
    again = await gcore.poll(fetcher, at(12, 30, 50))
    assert vendor.queries[-1]["from"] == "2024-07-01T12:30:00Z"
    assert [s.value for s in again.samples["42"]] == [7.0]
    assert again.newest_timestamp == ts(12, 29)


async def test_newest_seen_bucket_is_dropped_once_a_fresh_poll_would_not_ask_for_it(serve_app, fetcher) -> None:
    vendor = Recorder([[ts(12, 29), 7]])
    gcore = provider(base_url=await serve_app(vendor.app()), stream_ids=[42])
    await gcore.poll(fetcher, at(12, 30, 20))
    vendor.points = []
    assert (await gcore.poll(fetcher, at(12, 31, 20))).samples["42"][0].value == 7.0
    assert (await gcore.poll(fetcher, at(12, 32, 20))).samples["42"] == []


async def test_idle_stream_costs_one_request_per_poll_and_its_window_never_grows(serve_app, fetcher) -> None:
    vendor = Recorder([])
    gcore = provider(base_url=await serve_app(vendor.app()), stream_ids=[42, 43])
    polls = [at(12, 30, 20), at(12, 31, 20), at(13, 45, 0), at(18, 2, 30)]
    for now in polls:
        result = await gcore.poll(fetcher, now)
        assert result.ok and result.samples == {"42": [], "43": []}
    assert len(vendor.queries) == 2 * len(polls)
    for now, query in zip([p for p in polls for _ in (42, 43)], vendor.queries, strict=True):
        start = datetime.fromisoformat(query["from"]).timestamp()
        assert now.timestamp() - start < 3 * 60


async def test_a_stream_leaving_the_answer_is_forgotten(serve_app, fetcher) -> None:
    vendor = Recorder([[ts(12, 29), 7]])
    gcore = provider(base_url=await serve_app(vendor.app()), stream_ids=[42])
    await gcore.poll(fetcher, at(12, 30, 20))
    vendor.clients = []
    assert (await gcore.poll(fetcher, at(12, 30, 50))).samples["42"] == []
    vendor.clients = [123]
    await gcore.poll(fetcher, at(12, 31, 20))
    assert vendor.queries[-1]["from"] == "2024-07-01T12:29:00Z"


async def test_simulator_gives_any_stream_id_a_stable_plausible_audience(serve_app, fetcher) -> None:
    simulator = GcoreSimulator(api_key="77$demo-key", clock=lambda: at(12, 30, 20).timestamp())
    base_url = await serve_app(simulator.app())
    values = []
    for stream_id in range(5000, 5040):
        gcore = provider(base_url=base_url, api_key="77$demo-key", stream_ids=[stream_id])
        first = await gcore.poll(fetcher, at(12, 30, 20))
        again = await provider(base_url=base_url, api_key="77$demo-key", stream_ids=[stream_id]).poll(
            fetcher, at(12, 30, 20)
        )
        [sample] = first.samples[str(stream_id)]
        assert again.samples[str(stream_id)] == [sample]
        values.append(sample.value)
    assert all(0 <= value < 100_000 for value in values)
    assert len(set(values)) > 20
    assert sum(value == 0 for value in values) < len(values) / 2


async def test_what_each_stream_remembers_between_polls_is_not_tracked_by_the_garbage_collector(
    serve_app, fetcher
) -> None:
    vendor = Recorder([[ts(12, 28), 5], [ts(12, 29), 7], [ts(12, 30), 1]])
    gcore = provider(base_url=await serve_app(vendor.app()), stream_ids=[42, 43])
    await gcore.poll(fetcher, at(12, 30, 20))
    for _ in range(3):  # a tuple is untracked by the first collection that finds its members so
        gc.collect()
    assert len(gcore._newest) == 2
    assert not any(gc.is_tracked(remembered) for remembered in gcore._newest.values())
