"""Issue 15, item 4, on a running exporter: a stream's title and game are written by the streamer,
a third party, and become label values; a megabyte-long one is cut, so one stream cannot make
every scrape a megabyte."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from exporter.providers.streamscharts import MAX_LABEL_CHARS
from tests.conftest import fixture_json, http_get


async def test_a_megabyte_title_and_game_are_cut_to_the_label_limit(
    serve_app: Any, run_exporter: Any, tmp_path: Path
) -> None:
    answer = fixture_json("streamscharts/standard.json")
    answer["data"].update(stream_status="T" * 1_000_000, top_game_by_hw="G" * 100_000)

    async def stream(request: web.Request) -> web.Response:
        return web.Response(text=json.dumps(answer), content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/jazz/channels/{channel}/streams/{stream_id}", stream)
    base_url = await serve_app(app)
    source = {"name": "sc", "provider": "streamscharts", "base_url": base_url, "client_id": "client-1"}
    source |= {"token": "t0ken-value", "streams": [{"channel": "shroud", "platform": "twitch", "stream_id": "1"}]}
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"global": {"state_dir": str(tmp_path)}, "sources": [source]}))
    exporter = run_exporter("--config", str(config))
    text = await asyncio.to_thread(metrics_once_ready, exporter)

    families = {family.name: family for family in text_string_to_metric_families(text)}
    (info,) = families["livestream_stream_info"].samples
    assert info.labels["title"] == "T" * (MAX_LABEL_CHARS - 1) + "…"
    assert info.labels["top_game"] == "G" * (MAX_LABEL_CHARS - 1) + "…"
    (ratio,) = families["livestream_top_game_watched_ratio"].samples
    assert ratio.labels["game"] == info.labels["top_game"]


def metrics_once_ready(exporter: Any) -> str:
    exporter.wait_until(lambda: http_get(exporter.base_url + "/-/ready")[0] == 200)
    return exporter.metrics()
