"""Issue 15, item 4, on a running exporter: a vendor's error text is shown as a last error and
logged, whatever it holds. Lone surrogates (an error message cut inside an emoji) are replaced,
so the landing page keeps answering; a megabyte-long message is cut, so the log stays one short
line per kind of failure."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from aiohttp import web

from exporter.failurelog import MAX_REASON_CHARS
from tests.conftest import http_get

GCORE_PATH = "/streaming/statistics/stream/viewers"


async def test_a_vendor_error_text_with_lone_surrogates_or_a_megabyte_long_is_shown_cleaned_and_cut(
    serve_app: Any, run_exporter: Any, tmp_path: Path
) -> None:
    async def viewers(request: web.Request) -> web.Response:
        if request.query["stream_id"] == "1":
            body = '{"data": [], "errors": ["stream \\ud83d cut and \\udcff stray"]}'
        else:
            body = json.dumps({"data": [], "errors": ["x" * 1_000_000 + " secret-tail"]})
        return web.Response(status=500, text=body, content_type="application/json")

    app = web.Application()
    app.router.add_get(GCORE_PATH, viewers)
    base_url = await serve_app(app)
    sources = [
        {"name": f"g{stream}", "provider": "gcore", "base_url": base_url, "api_key": f"key-{stream}-value"}
        | {"stream_ids": [stream], "interval": "60s"}
        for stream in (1, 2)
    ]
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"global": {"state_dir": str(tmp_path)}, "sources": sources}))
    exporter = run_exporter("--config", str(config))
    await asyncio.to_thread(check_both_failures_are_shown_and_logged, exporter)


def check_both_failures_are_shown_and_logged(exporter: Any) -> None:
    exporter.wait_until(lambda: http_get(exporter.base_url + "/-/ready")[0] == 200)
    status, _, page = http_get(exporter.base_url + "/")
    assert status == 200
    landing = page.decode()
    assert "stream \ufffd cut and \ufffd stray" in landing
    assert "secret-tail" not in landing
    assert len(max(re.findall(r"x+", landing), key=len)) <= MAX_REASON_CHARS
    failed = [line for line in exporter.log().splitlines() if 'msg="poll failed"' in line]
    assert len(failed) == 2
    assert all(len(line) < MAX_REASON_CHARS + 500 for line in failed)
