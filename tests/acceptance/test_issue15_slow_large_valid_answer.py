"""Issue 15, item 1, on a running exporter (slow: a 54 MiB answer): the 300 MiB bound holds for
answers *under* `global.max_response_bytes` too. A valid LLS answer of a million points is within
the default 64 MiB cap, yet decoding it whole builds ~400 MiB of Python objects: it is decoded a slice
at a time, one point held at once (`Answer.json_with_list`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from aiohttp import web

from exporter.providers.lls import PATH
from tests.conftest import http_get, peak_rss_mib

POINTS = 1_000_000


class BigAnswerVendor:
    """An LLS that answers a million valid points (54 MiB)."""

    def __init__(self) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - 60))
        points = ",".join(f'{{"timestamp":"{stamp}","concurrentViewers":{i % 1000}}}' for i in range(POINTS))
        self.body = ('{"domain":"live.example.com","app":"demoapp","data":[' + points + "]}").encode()

    async def viewers(self, request: web.Request) -> web.Response:
        return web.Response(body=self.body, content_type="application/json")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(PATH, self.viewers)
        return app


def test_slow_a_valid_answer_under_the_cap_keeps_the_exporter_under_300_mib(
    run_exporter: Any, simulator_thread: Any, tmp_path: Path
) -> None:
    vendor = simulator_thread(BigAnswerVendor())
    config = tmp_path / "config.yaml"
    config.write_text(
        f"global: {{state_dir: {str(tmp_path)!r}}}\nsources:\n"
        f"  - {{name: big, provider: lls, base_url: {vendor.base_url!r}, access_key_id: AKID-1, "
        "access_key_secret: lls-secret-1, domain: live.example.com, app: demoapp}\n"
    )
    exporter = run_exporter("--config", str(config))
    exporter.wait_until(lambda: http_get(exporter.base_url + "/-/ready")[0] == 200, timeout=60)
    assert http_get(exporter.base_url + "/metrics")[0] == 200
    assert peak_rss_mib(exporter.proc.pid) < 300
