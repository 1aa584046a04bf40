"""Issue 15, item 5, on a running exporter: readiness means "every source was tried" at start, and
once ready the replica stays ready. A reload that adds a source whose vendor hangs (or a new shard
that restarts every source) must not take every replica out of its Service at once, or nobody
scrapes the `source_up` 0 that pages."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path
from typing import Any

from aiohttp import web

from exporter.providers.naver import PATH as NAVER_PATH
from tests.conftest import http_get

GCORE_PATH = "/streaming/statistics/stream/viewers"


async def test_a_reload_adding_a_source_whose_vendor_hangs_keeps_the_replica_ready(
    serve_app: Any, run_exporter: Any, tmp_path: Path
) -> None:
    hung, released = asyncio.Event(), asyncio.Event()

    async def gcore(request: web.Request) -> web.Response:
        return web.json_response([{"client": 1, "metrics": {"streams": []}}])

    async def naver(request: web.Request) -> web.Response:
        hung.set()
        await released.wait()
        return web.json_response({"code": 200, "result": []})

    app = web.Application()
    app.router.add_get(GCORE_PATH, gcore)
    app.router.add_get(NAVER_PATH, naver)
    base_url = await serve_app(app)
    gcore_source = f"  - {{name: g, provider: gcore, base_url: '{base_url}', api_key: gcore-key-1, stream_ids: [1]}}\n"
    naver_source = f"  - {{name: n, provider: naver, base_url: '{base_url}', api_key: naver-key-1, project_id: p}}\n"
    config = tmp_path / "config.yaml"
    head = f"global: {{state_dir: '{tmp_path}', timeout: 60s}}\nsources:\n"
    config.write_text(head + gcore_source)
    exporter = run_exporter("--config", str(config))
    await asyncio.to_thread(exporter.wait_until, lambda: http_get(exporter.base_url + "/-/ready")[0] == 200)

    config.write_text(head + gcore_source + naver_source)
    try:
        assert await asyncio.to_thread(post, exporter.base_url + "/-/reload") == 200
        await asyncio.wait_for(hung.wait(), 15)
        assert (await asyncio.to_thread(http_get, exporter.base_url + "/-/ready"))[0] == 200
    finally:
        released.set()


def post(url: str) -> int:
    with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=10) as response:
        return response.status
