"""Issue 15, item 1, on a running exporter (slow: 8 x 200 MB bodies): the 300 MiB bound holds when
many answers are huge at once. One Gcore source polls its streams concurrently; when every stream
answers an endless 200 MB body, each is read up to `global.max_response_bytes` before it is given
up, so without a turn for large answers eight of them hold eight times the cap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from tests.conftest import http_get, peak_rss_mib

MiB = 1024 * 1024
STREAMS = 8


class HugeBodiesVendor:
    """A Gcore whose every stream answers 200 MB of spaces, chunked."""

    async def viewers(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = b" " * MiB
        try:
            for _ in range(200):
                await response.write(chunk)
        except ConnectionError:
            pass
        return response

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/streaming/statistics/stream/viewers", self.viewers)
        return app


def given_up(metrics: str) -> float:
    return sum(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("livestream_exporter_requests_total{")
        and ('code="too_large"' in line or 'code="timeout"' in line)
    )


def test_slow_eight_huge_answers_at_once_keep_the_exporter_under_300_mib(
    run_exporter: Any, simulator_thread: Any, tmp_path: Path
) -> None:
    vendor = simulator_thread(HugeBodiesVendor())
    config = tmp_path / "config.yaml"
    config.write_text(
        f"global: {{state_dir: {str(tmp_path)!r}, timeout: 30s}}\nsources:\n"
        f"  - {{name: huge, provider: gcore, base_url: {vendor.base_url!r}, api_key: k3y-value, "
        f"stream_ids: {list(range(1, STREAMS + 1))}}}\n"
    )
    exporter = run_exporter("--config", str(config))
    exporter.wait_until(lambda: given_up(exporter.metrics()) >= STREAMS, timeout=90)
    assert http_get(exporter.base_url + "/-/ready")[0] == 200
    assert peak_rss_mib(exporter.proc.pid) < 300


class WrongShapeVendor:
    """A Gcore whose every stream answers 5 MB of valid JSON in the wrong shape (an object)."""

    def __init__(self) -> None:
        self.body = ('{"not": "a list of clients", "x": [' + ",".join(["1"] * 2_500_000) + "]}").encode()

    async def viewers(self, request: web.Request) -> web.Response:
        return web.Response(body=self.body, content_type="application/json")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/streaming/statistics/stream/viewers", self.viewers)
        return app


def test_slow_failed_units_do_not_keep_their_answers_alive(
    run_exporter: Any, simulator_thread: Any, tmp_path: Path
) -> None:
    """A failed unit's error is kept until the next poll; the frames it was raised in hold the
    answer and its decoded JSON (~27 MiB here), which must not be kept with it."""
    vendor = simulator_thread(WrongShapeVendor())
    streams = 16
    config = tmp_path / "config.yaml"
    config.write_text(
        f"global: {{state_dir: {str(tmp_path)!r}}}\nsources:\n"
        f"  - {{name: wrong, provider: gcore, base_url: {vendor.base_url!r}, api_key: k3y-value, "
        f"stream_ids: {list(range(1, streams + 1))}}}\n"
    )
    exporter = run_exporter("--config", str(config))
    invalid = 'livestream_exporter_requests_total{code="invalid_body",endpoint="stream_viewers",provider="gcore",source="wrong"}'

    def all_answered() -> bool:
        return any(
            line.startswith(invalid) and float(line.split()[-1]) >= streams for line in exporter.metrics().splitlines()
        )

    exporter.wait_until(all_answered, timeout=90)
    exporter.wait_until(lambda: http_get(exporter.base_url + "/-/ready")[0] == 200)
    assert peak_rss_mib(exporter.proc.pid) < 300
