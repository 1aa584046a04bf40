"""Every vendor's large answer is decoded a slice at a time (other tasks run between slices) and
gives what the whole `json.loads` path gives: the same samples, rejected points and timestamps,
for the live poll and for history. Each vendor is a loopback aiohttp server answering its
documented shape, a megabyte or so, with the envelope's fields before and after the list."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from exporter import fetch as fetch_module
from exporter.poll import PollError
from exporter.providers.cloudflare import Cloudflare, CloudflareSettings
from exporter.providers.gcore import Gcore, GcoreSettings
from exporter.providers.lls import Lls, LlsSettings, sfd_time
from exporter.providers.naver import Naver, NaverSettings
from exporter.providers.streamscharts import StreamsCharts, StreamsChartsSettings
from tests.turns import Ticker

NOW = datetime(2025, 5, 18, 18, 0, 0, tzinfo=UTC)
POINTS = 20_000


def answer_with(body: dict[str, Any]) -> bytes:
    encoded = json.dumps(body).encode()
    assert len(encoded) > fetch_module.WHOLE_JSON_BYTES
    return encoded


async def serve(serve_app: Any, body: bytes) -> str:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    return await serve_app(app)


async def sliced_and_whole(monkeypatch: pytest.MonkeyPatch, run: Callable[[], Awaitable[Any]]) -> tuple[Any, Any, int]:
    """What `run` gives on the sliced path, then on the whole path, and the loop's turns while
    the sliced one ran."""
    async with Ticker().running() as ticker:
        sliced = await run()
        turns = ticker.turns
    with monkeypatch.context() as whole_path:
        whole_path.setattr(fetch_module, "WHOLE_JSON_BYTES", 1 << 40)
        whole = await run()
    return sliced, whole, turns


def same_result(sliced: Any, whole: Any) -> bool:
    return (
        sliced.ok
        and {unit: list(samples) for unit, samples in sliced.samples.items()}
        == {unit: list(samples) for unit, samples in whole.samples.items()}
        and sliced.rejected_points == whole.rejected_points
        and getattr(sliced, "newest_timestamp", None) == getattr(whole, "newest_timestamp", None)
    )


def lls(base_url: str) -> Lls:
    provider = Lls(
        LlsSettings.model_validate(
            {
                "name": "l",
                "provider": "lls",
                "base_url": base_url,
                "access_key_id": "AKID-1",
                "access_key_secret": "lls-secret-1",
                "domain": "live.example.com",
            }
        )
    )
    provider.clock = NOW.timestamp
    return provider


def lls_answer() -> bytes:
    first = NOW.timestamp() - 2 * 86400
    points: list[Any] = [
        {"timestamp": sfd_time(first + 60 * (i % 2800)), "concurrentViewers": i % 977} for i in range(POINTS)
    ]
    points[7] = {"timestamp": "20250518T18000Z", "concurrentViewers": 1}
    points[8] = "not a point"
    return answer_with({"domain": "cdn.example.com", "data": points, "app": "echoed-after-the-list"})


async def test_lls_poll_of_a_large_answer_runs_in_slices_and_matches_the_whole_path(
    serve_app: Any, fetcher: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url = await serve(serve_app, lls_answer())
    sliced, whole, turns = await sliced_and_whole(monkeypatch, lambda: lls(base_url).poll(fetcher, NOW))
    assert same_result(sliced, whole)
    [sample] = sliced.samples["all"]
    assert dict(sample.labels)["app"] == "echoed-after-the-list" and sliced.rejected_points == 2
    assert turns >= 50


async def test_lls_history_of_a_large_answer_runs_in_slices_and_matches_the_whole_path(
    serve_app: Any, fetcher: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url = await serve(serve_app, lls_answer())
    start = NOW.timestamp() - 2 * 86400

    sliced, whole, turns = await sliced_and_whole(
        monkeypatch, lambda: lls(base_url).history(fetcher, start, NOW.timestamp())
    )
    assert same_result(sliced, whole)
    assert len(sliced.samples["all"]) == 2800
    assert turns >= 50


def naver(base_url: str) -> Naver:
    return Naver(
        NaverSettings.model_validate(
            {"name": "n", "provider": "naver", "base_url": base_url, "api_key": "k-123456", "project_id": "p1"}
        )
    )


def naver_points() -> list[Any]:
    points: list[Any] = [
        {"logDate": f"2025-05-19 02:{i % 60:02d}:00", "currentViewerCnt": i % 1000} for i in range(POINTS)
    ]
    points[3] = {"logDate": "yesterday", "currentViewerCnt": 4}
    return points


async def test_naver_poll_of_a_large_answer_runs_in_slices_and_matches_the_whole_path(
    serve_app: Any, fetcher: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url = await serve(serve_app, answer_with({"result": naver_points(), "code": 200, "message": "ok"}))
    sliced, whole, turns = await sliced_and_whole(monkeypatch, lambda: naver(base_url).poll(fetcher, NOW))
    assert same_result(sliced, whole)
    assert sliced.rejected_points == 1 and len(sliced.samples["total"]) == 1
    assert turns >= 50


async def test_naver_error_after_a_large_list_fails_the_poll_and_counts_none_of_its_points(
    serve_app: Any, fetcher: Any
) -> None:
    body = answer_with({"result": naver_points(), "error": {"errorCode": "E401", "message": "bad key"}})
    result = await naver(await serve(serve_app, body)).poll(fetcher, NOW)
    assert isinstance(result.failures["total"], PollError) and "E401: bad key" in str(result.failures["total"])
    assert result.rejected_points == 0 and result.newest_timestamp is None


async def test_naver_history_of_a_large_answer_runs_in_slices_and_matches_the_whole_path(
    serve_app: Any, fetcher: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url = await serve(serve_app, answer_with({"code": 200, "result": naver_points()}))
    end = datetime(2025, 5, 18, 17, 59, tzinfo=UTC).timestamp()
    sliced, whole, turns = await sliced_and_whole(monkeypatch, lambda: naver(base_url).history(fetcher, 0, end))
    assert same_result(sliced, whole)
    assert len(sliced.samples["total"]) == 60 and sliced.rejected_points == 1
    assert turns >= 50


def cloudflare(base_url: str) -> Cloudflare:
    return Cloudflare(
        CloudflareSettings.model_validate(
            {
                "name": "cf",
                "provider": "cloudflare",
                "base_url": base_url,
                "api_token": "cf-token-123",
                "account_id": "acc",
                "app_id": "app",
            }
        )
    )


async def test_cloudflare_poll_of_a_large_answer_runs_in_slices_and_matches_the_whole_path(
    serve_app: Any, fetcher: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries: list[Any] = [
        {"date": f"2025-05-{1 + i % 18:02d}", "count": i, "total_ingest_seconds": 2 * i, "total_viewer_seconds": -1}
        for i in range(POINTS)
    ]
    entries[5] = {"count": 3}
    body = answer_with({"data": entries, "success": True, "errors": [], "messages": []})
    base_url = await serve(serve_app, body)
    sliced, whole, turns = await sliced_and_whole(monkeypatch, lambda: cloudflare(base_url).poll(fetcher, NOW))
    assert same_result(sliced, whole)
    assert sliced.rejected_points == POINTS and len(sliced.samples["daywise"]) == 2 * (POINTS - 1) + 1
    assert turns >= 50


async def test_cloudflare_success_false_after_a_large_list_fails_the_poll_and_counts_none_of_it(
    serve_app: Any, fetcher: Any
) -> None:
    entries = [{"date": "2025-05-18"} for _ in range(POINTS)] + ["junk"]
    body = answer_with({"data": entries, "success": False, "errors": [{"code": 10000, "message": "denied"}]})
    result = await cloudflare(await serve(serve_app, body)).poll(fetcher, NOW)
    assert "10000: denied" in str(result.failures["daywise"]) and result.rejected_points == 0


async def test_streamscharts_games_of_a_large_answer_run_in_slices_and_match_the_whole_path(
    serve_app: Any, fetcher: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    games: list[Any] = [
        {"name": f"Game {i % 9000}", "hours_watched": i, "peak_viewers": i % 500} for i in range(POINTS)
    ]
    games[1] = {"hours_watched": 5}
    data = {"stream_status": "Finals", "all_stream_games": games, "peak_viewers": 1200, "hours_watched": 9000}
    base_url = await serve(serve_app, answer_with({"data": data}))

    def streamscharts() -> StreamsCharts:
        settings = StreamsChartsSettings.model_validate(
            {
                "name": "sc",
                "provider": "streamscharts",
                "base_url": base_url,
                "client_id": "cid-0123456789",
                "token": "tok-abcdefghij",
                "testing_mode": True,
                "streams": [{"platform": "twitch", "channel": "shroud", "stream_id": "41976921163"}],
                "metric_sets": ["games"],
            }
        )
        return StreamsCharts(settings)

    sliced, whole, turns = await sliced_and_whole(monkeypatch, lambda: streamscharts().poll(fetcher, NOW))
    assert same_result(sliced, whole)
    [samples] = sliced.samples.values()
    assert sliced.rejected_points == 1 + (POINTS - 1 - 9000)
    assert "game" not in dict(samples[0].labels) and len(samples) > 9000
    assert turns >= 50


async def test_gcore_history_of_a_large_answer_runs_in_slices_and_stamps_every_client(
    serve_app: Any, fetcher: Any
) -> None:
    bucket = NOW.timestamp() // 60 * 60 - 600
    clients = [
        {"client": 1000 + i, "metrics": {"streams": [[bucket, i % 50], [bucket + 60, "x"]]}} for i in range(POINTS)
    ]
    body = json.dumps(clients).encode()
    assert len(body) > fetch_module.WHOLE_JSON_BYTES
    settings = {"name": "g", "provider": "gcore", "base_url": await serve(serve_app, body), "api_key": "1$gcore-key"}
    gcore = Gcore(GcoreSettings.model_validate(settings))
    async with Ticker().running() as ticker:
        result = await gcore.history(fetcher, NOW.timestamp() - 3600, NOW.timestamp())
        turns = ticker.turns
    stamped = {
        (dict(timed.sample.labels)["client"], timed.timestamp, timed.sample.value) for timed in result.samples["all"]
    }
    assert stamped == {(str(1000 + i), bucket + 60, float(i % 50)) for i in range(POINTS)}
    assert result.rejected_points == POINTS
    assert turns >= 50
