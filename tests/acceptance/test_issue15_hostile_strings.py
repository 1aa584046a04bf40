"""Issue 15, item 4, on a running exporter: every string a vendor sends may hold a lone surrogate
(`"\\ud800"`) or be an emoji cut in half. Each vendor's documented answer, with every string in
it spoiled so, still publishes: the bad characters are replaced, both exposition formats parse,
the landing page answers, and nothing is logged as a failure."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families as text_families

from exporter.providers.lls import PATH as LLS_PATH
from exporter.providers.naver import PATH as NAVER_PATH
from tests.conftest import fixture_json, http_get

TIME_KEYS = {"timestamp", "logDate", "date", "stream_start", "stream_end"}
"""Strings that are times: spoiling them would make the point unusable, which is another test."""
SPOILERS: dict[str, Callable[[str], str]] = {
    "lone_surrogate": lambda text: "\ud800" + text,
    "emoji_cut_in_half": lambda text: text + "\U0001f600".encode("utf-16-le")[:2].decode("utf-16-le", "surrogatepass"),
}


def spoil(value: Any, spoiler: Callable[[str], str], key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: spoil(v, spoiler, k) for k, v in value.items()}
    if isinstance(value, list):
        return [spoil(item, spoiler, key) for item in value]
    if isinstance(value, str) and key not in TIME_KEYS:
        return spoiler(value)
    return value


def documented_answers(now: float) -> dict[str, Any]:
    """Each vendor's example answer, its newest point moved to now where the vendor keeps time."""
    gcore = [{"client": "client-7", "metrics": {"streams": [[int(now) - 600, 10], [int(now) - 300, 20]]}}]
    lls = fixture_json("lls/query_realtime_example.json")
    lls["data"][0]["timestamp"] = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now - 60))
    naver = fixture_json("naver/current_viewers_example.without_ellipsis_line.json")
    naver["result"][0]["logDate"] = time.strftime("%Y-%m-%d %H:%M:00", time.gmtime(now + 9 * 3600 - 60))
    naver["result"][0]["currentViewerCnt"] = 7
    return {
        "gcore": gcore,
        "lls": lls,
        "naver": naver,
        "cloudflare": fixture_json("cloudflare/daywise_example.json"),
        "streamscharts": fixture_json("streamscharts/standard.json"),
    }


def sources(base_url: str) -> list[dict[str, Any]]:
    common = {"base_url": base_url, "interval": "60s"}
    return [
        {"name": "g", "provider": "gcore", "api_key": "gcore-key-1", "stream_ids": [1]} | common,
        {"name": "l", "provider": "lls", "access_key_id": "AKID-1", "access_key_secret": "lls-secret-1"}
        | {"domain": "live.example.com", "app": "demoapp"}
        | common,
        {"name": "n", "provider": "naver", "api_key": "naver-key-1", "project_id": "project-1"} | common,
        {"name": "c", "provider": "cloudflare", "api_token": "cf-token-1", "account_id": "acc", "app_id": "app"}
        | common,
        {"name": "s", "provider": "streamscharts", "client_id": "client-1", "token": "sc-token-1"}
        | {"streams": [{"channel": "shroud", "platform": "twitch", "stream_id": "41976921163"}]}
        | common,
    ]


@pytest.mark.parametrize("spoiler", SPOILERS)
async def test_every_vendor_string_spoiled_still_publishes_with_the_bad_characters_replaced(
    serve_app: Any, run_exporter: Any, tmp_path: Path, spoiler: str
) -> None:
    answers = {vendor: spoil(body, SPOILERS[spoiler]) for vendor, body in documented_answers(time.time()).items()}

    def answering(vendor: str) -> Callable[[web.Request], Any]:
        async def answer(request: web.Request) -> web.Response:
            return web.Response(text=json.dumps(answers[vendor]), content_type="application/json")

        return answer

    app = web.Application()
    app.router.add_get("/streaming/statistics/stream/viewers", answering("gcore"))
    app.router.add_get(LLS_PATH, answering("lls"))
    app.router.add_get(NAVER_PATH, answering("naver"))
    app.router.add_get("/accounts/{account}/realtime/kit/{app}/analytics/livestreams/daywise", answering("cloudflare"))
    app.router.add_get("/api/jazz/channels/{channel}/streams/{stream_id}", answering("streamscharts"))
    base_url = await serve_app(app)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"global": {"state_dir": str(tmp_path)}, "sources": sources(base_url)}))
    exporter = run_exporter("--config", str(config))
    await asyncio.to_thread(check_every_source_publishes, exporter)


def check_every_source_publishes(exporter: Any) -> None:
    exporter.wait_until(lambda: http_get(exporter.base_url + "/-/ready")[0] == 200)
    text = http_get(exporter.base_url + "/metrics")[2].decode()
    accept = {"Accept": "application/openmetrics-text; version=1.0.0"}
    openmetrics = http_get(exporter.base_url + "/metrics", headers=accept)[2].decode()
    families = {family.name: family for family in text_families(text)}
    assert {family.name for family in openmetrics_families(openmetrics)} >= {"livestream_exporter_source_up"}
    up = {sample.labels["source"]: sample.value for sample in families["livestream_exporter_source_up"].samples}
    assert up == dict.fromkeys("glncs", 1.0)
    audience = {
        sample.labels["source"]
        for name, family in families.items()
        if name.startswith("livestream_") and not name.startswith("livestream_exporter_")
        for sample in family.samples
    }
    assert audience == set("glncs")
    assert "\ud800" not in text and "\ud83d" not in text
    assert http_get(exporter.base_url + "/")[0] == 200
    assert "level=warn" not in exporter.log() and "level=error" not in exporter.log()
