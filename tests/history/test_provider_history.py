"""Provider history: any window of the simulators' records, each point at the time the live
exporter would first have published it, through the live poll's requests and budgets."""

from __future__ import annotations

import time
from typing import Any

from exporter.demo.gcore import GcoreSimulator
from exporter.demo.lls import LlsSimulator
from exporter.demo.naver import NaverSimulator
from exporter.providers.gcore import Gcore, GcoreSettings
from exporter.providers.lls import Lls, LlsSettings
from exporter.providers.naver import Naver, NaverSettings

NOW = 1_780_000_000.0 // 3600 * 3600 + 1234


def gcore(base_url: str, sim: GcoreSimulator, **keys: Any) -> Gcore:
    return Gcore(
        GcoreSettings.model_validate(
            {"name": "g", "provider": "gcore", "base_url": base_url, "api_key": sim.api_key, **keys}
        )
    )


def lls(base_url: str, sim: LlsSimulator, **keys: Any) -> Lls:
    provider = Lls(
        LlsSettings.model_validate(
            {
                "name": "l",
                "provider": "lls",
                "base_url": base_url,
                "access_key_id": sim.access_key_id,
                "access_key_secret": sim.access_key_secret,
                "domain": "live.example.com",
                "app": "demoapp",
                **keys,
            }
        )
    )
    provider.clock = sim.clock
    return provider


async def test_gcore_history_stamps_each_closed_bucket_at_its_end(serve_app, fetcher) -> None:
    sim = GcoreSimulator(clock=lambda: NOW)
    provider = gcore(await serve_app(sim.app()), sim, stream_ids=[101])
    start, end = NOW - 3 * 3600, NOW - 600

    result = await provider.history(fetcher, start, end)

    assert result.ok
    points = [(p.timestamp, p.sample.value, dict(p.sample.labels)) for p in result.samples["101"]]
    first_end = -(-start // 60) * 60
    expected_ends = range(int(first_end), int(end) + 1, 60)
    assert [p[0] for p in points] == list(expected_ends)
    assert [p[1] for p in points] == [sim.viewers(101, t - 60, 60, NOW) for t in expected_ends]
    assert points[0][2] == {"client": "123", "stream": "101", "granularity": "1m"}


async def test_gcore_history_never_includes_the_open_bucket(serve_app, fetcher) -> None:
    sim = GcoreSimulator(clock=lambda: NOW)
    provider = gcore(await serve_app(sim.app()), sim, granularity="5m")

    result = await provider.history(fetcher, NOW - 1800, NOW)

    assert max(p.timestamp for p in result.samples["all"]) <= NOW


async def test_lls_history_stamps_points_at_their_timestamp_and_skips_the_open_one(serve_app, fetcher) -> None:
    sim = LlsSimulator(clock=lambda: NOW, malformed_every=1)
    provider = lls(await serve_app(sim.app()), sim, streams=["main"], protocol="ll-hls")
    start = NOW - 2 * 86400 - 3600

    result = await provider.history(fetcher, start, NOW)

    points = result.samples["stream=main,protocol=ll-hls"]
    stamps = [p.timestamp for p in points]
    assert stamps == list(range(int(-(-start // 300) * 300), int(NOW - 300) + 1, 300))
    assert [p.value for p in (q.sample for q in points[:5])] == [
        sim.peak("main", "ll-hls", None, int(t), t + 300) for t in stamps[:5]
    ]
    assert len(sim.requests) == 3, "one request per day of range"
    assert result.rejected_points == 3, "each answer's malformed point is counted"


async def test_naver_history_reads_log_dates_in_the_source_timezone(serve_app, fetcher) -> None:
    sim = NaverSimulator()
    base_url = await serve_app(sim.app())
    provider = Naver(
        NaverSettings.model_validate(
            {
                "name": "n",
                "provider": "naver",
                "base_url": base_url,
                "api_key": sim.api_key,
                "project_id": sim.project_id,
            }
        )
    )
    now = time.time()

    result = await provider.history(fetcher, now - 1800, now)

    points = result.samples["total"]
    assert 29 <= len(points) <= 30
    assert all(p.sample.value == sim.viewers_at(int(p.timestamp)) for p in points)
    assert all(now - 1800 <= p.timestamp <= now - 60 for p in points)
    assert result.kept_since is None


async def test_naver_history_clips_a_range_older_than_the_hour_it_keeps(serve_app, fetcher) -> None:
    sim = NaverSimulator()
    base_url = await serve_app(sim.app())
    provider = Naver(
        NaverSettings.model_validate(
            {
                "name": "n",
                "provider": "naver",
                "base_url": base_url,
                "api_key": sim.api_key,
                "project_id": sim.project_id,
            }
        )
    )
    now = time.time()

    result = await provider.history(fetcher, now - 6 * 3600, now)

    assert result.ok
    assert result.kept_since is not None and result.kept_since > now - 3700
    assert len(result.samples["total"]) == 60
