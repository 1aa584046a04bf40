"""Issue 15, items 4 and 8, on a running exporter: a vendor number no series can hold is a counted
rejection, never a published NaN, infinity or negative count: a figure finite as sent but not
once converted to base units (Streams Charts `hours_watched` x 3600, `airtime_in_m` x 60), and a
viewer count that is NaN, infinite or negative (LLS, NAVER)."""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from exporter.providers.lls import PATH as LLS_PATH
from exporter.providers.naver import PATH as NAVER_PATH
from tests.conftest import fixture_json, http_get

STREAM = {"channel": "shroud", "platform": "twitch", "stream_id": "41976921163"}


async def test_a_figure_that_overflows_in_base_units_is_rejected_and_counted(
    serve_app: Any, run_exporter: Any, tmp_path: Path
) -> None:
    answer = fixture_json("streamscharts/standard.json")
    answer["data"].update(hours_watched=1e308, airtime_in_m=1e308)

    async def stream(request: web.Request) -> web.Response:
        return web.Response(text=json.dumps(answer), content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/jazz/channels/{channel}/streams/{stream_id}", stream)
    base_url = await serve_app(app)
    config = tmp_path / "config.yaml"
    source = {"name": "sc", "provider": "streamscharts", "base_url": base_url, "client_id": "client-1"}
    source |= {"token": "t0ken-value", "streams": [STREAM]}
    config.write_text(json.dumps({"global": {"state_dir": str(tmp_path)}, "sources": [source]}))
    exporter = run_exporter("--config", str(config))
    families = await asyncio.to_thread(first_poll_as_openmetrics, exporter)

    def values(name: str) -> list[float]:
        return [sample.value for sample in families[name].samples] if name in families else []

    assert values("livestream_exporter_source_up") == [1.0]
    assert values("livestream_exporter_rejected_points") == [2.0]
    assert values("livestream_peak_viewers") == [17819.0]
    assert values("livestream_airtime_seconds") == []
    assert all(math.isfinite(sample.value) for family in families.values() for sample in family.samples)


def first_poll_as_openmetrics(exporter: Any) -> dict[str, Any]:
    exporter.wait_until(lambda: http_get(exporter.base_url + "/-/ready")[0] == 200)
    accept = {"Accept": "application/openmetrics-text; version=1.0.0"}
    body = http_get(exporter.base_url + "/metrics", headers=accept)[2].decode()
    return {family.name: family for family in text_string_to_metric_families(body)}


NOT_A_COUNT = ["NaN", "Infinity", "-Infinity", "-5", "1e400"]
"""JSON tokens Python's decoder accepts (NaN and the infinities are not JSON, 1e400 overflows)
that no viewer count can be."""


@pytest.mark.parametrize("token", NOT_A_COUNT)
async def test_a_newest_point_whose_viewer_count_is_no_count_is_rejected_and_the_last_good_point_published(
    serve_app: Any, run_exporter: Any, tmp_path: Path, token: str
) -> None:
    now = time.time()
    lls_times = [time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now - seconds)) for seconds in (120, 60)]
    naver_times = [time.strftime("%Y-%m-%d %H:%M:00", time.gmtime(now + 9 * 3600 - seconds)) for seconds in (60, 120)]

    async def lls(request: web.Request) -> web.Response:
        points = f'{{"timestamp": "{lls_times[0]}", "concurrentViewers": 1283}}, '
        points += f'{{"timestamp": "{lls_times[1]}", "concurrentViewers": {token}}}'
        return web.Response(
            text=f'{{"domain": "live.example.com", "data": [{points}]}}', content_type="application/json"
        )

    async def naver(request: web.Request) -> web.Response:
        points = f'{{"currentViewerCnt": {token}, "logDate": "{naver_times[0]}"}}, '
        points += f'{{"currentViewerCnt": 7, "logDate": "{naver_times[1]}"}}'
        body = f'{{"code": 200, "message": "currentViewers (1m)", "result": [{points}]}}'
        return web.Response(text=body, content_type="application/json")

    app = web.Application()
    app.router.add_get(LLS_PATH, lls)
    app.router.add_get(NAVER_PATH, naver)
    base_url = await serve_app(app)
    lls_source = {"name": "l", "provider": "lls", "base_url": base_url, "access_key_id": "AKID-1"}
    lls_source |= {"access_key_secret": "s3cret-value", "domain": "live.example.com"}
    naver_source = {"name": "n", "provider": "naver", "base_url": base_url, "api_key": "naver-key-1"}
    naver_source |= {"project_id": "project-1", "timezone": "Asia/Seoul"}
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"global": {"state_dir": str(tmp_path)}, "sources": [lls_source, naver_source]}))
    exporter = run_exporter("--config", str(config))
    families = await asyncio.to_thread(first_poll_as_openmetrics, exporter)

    def by_source(name: str) -> dict[str, float]:
        return {sample.labels["source"]: sample.value for sample in families[name].samples}

    assert by_source("livestream_exporter_source_up") == {"l": 1.0, "n": 1.0}
    assert by_source("livestream_exporter_rejected_points") == {"l": 1.0, "n": 1.0}
    assert by_source("livestream_concurrent_viewers") == {"l": 1283.0, "n": 7.0}
