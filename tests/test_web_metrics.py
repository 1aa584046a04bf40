"""/metrics over real HTTP: a large body written in slices arrives whole, plain and gzipped, and a
real Prometheus (Go's gzip and OpenMetrics parsers) scrapes every series from the fast path."""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from exporter.families import AUDIENCE_FAMILIES
from exporter.metrics import AudienceStore, ExporterMetrics, Exposition, SourceIdentity
from exporter.poll import PollResult, Sample
from exporter.web import EXPOSITION_KEY, WRITE_SLICE, metrics_handler
from tests.conftest import free_port, http_get

OPENMETRICS_ACCEPT = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"


async def exposition(sources: int, streams: int) -> Exposition:
    store = AudienceStore(AUDIENCE_FAMILIES, stale_after=300)
    for s in range(sources):
        name = f"src-{s}"
        store.add_source(SourceIdentity(name, "gcore", (("team", 'a "b"\\c'),)))
        units = {
            str(i): [Sample.of("livestream_unique_viewers", i + s, client="1", stream=f"stream {i} ✓")]
            for i in range(streams)
        }
        await store.apply_sliced(name, PollResult(samples=units), time.time())
    return Exposition(store, ExporterMetrics("1.2.3", "3.11.0"))


def metrics_app(served: Exposition, seen: list[dict[str, str]]) -> web.Application:
    @web.middleware
    async def record(request: web.Request, handler):  # type: ignore[no-untyped-def]
        response = await handler(request)
        seen.append({"accept-encoding": request.headers.get("Accept-Encoding", ""), **response.headers})
        return response

    app = web.Application(middlewares=[record])
    app[EXPOSITION_KEY] = served
    app.router.add_get("/metrics", metrics_handler)
    return app


async def test_large_body_arrives_whole_plain_and_gzipped(serve_app) -> None:
    served = await exposition(sources=3, streams=10_000)
    assert max(len(piece) for piece in served.pieces(False)) > WRITE_SLICE
    base_url = await serve_app(metrics_app(served, []))
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        for accept in ("text/plain", OPENMETRICS_ACCEPT):
            openmetrics = accept == OPENMETRICS_ACCEPT
            headers = {"Accept": accept, "Accept-Encoding": "identity"}
            async with session.get(f"{base_url}/metrics", headers=headers) as response:
                plain = await response.read()
                assert int(response.headers["Content-Length"]) == len(plain)
            async with session.get(f"{base_url}/metrics", headers={**headers, "Accept-Encoding": "gzip"}) as response:
                assert response.headers["Content-Encoding"] == "gzip"
                packed = await response.read()
            assert plain == served.body(openmetrics)
            assert gzip.decompress(packed) == plain


async def test_headers_a_middleware_adds_after_the_handler_reach_every_response(serve_app) -> None:
    @web.middleware
    async def frame_options(request: web.Request, handler):  # type: ignore[no-untyped-def]
        response = await handler(request)
        response.headers["X-Frame-Options"] = "deny"
        return response

    app = web.Application(middlewares=[frame_options])
    app[EXPOSITION_KEY] = await exposition(sources=1, streams=10)
    app.router.add_get("/metrics", metrics_handler)
    base_url = await serve_app(app)
    async with aiohttp.ClientSession() as session:
        for encoding in ("identity", "gzip"):
            async with session.get(f"{base_url}/metrics", headers={"Accept-Encoding": encoding}) as response:
                assert response.status == 200
                assert response.headers["X-Frame-Options"] == "deny"
                assert b"livestream_unique_viewers{" in await response.read()


async def test_prometheus_scrapes_every_series_through_gzip_and_openmetrics(serve_app, tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus not installed (Debian package prometheus); CI installs it")
    sources, streams = 3, 2000
    seen: list[dict[str, str]] = []
    base_url = await serve_app(metrics_app(await exposition(sources, streams), seen))
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
        f"scrape_configs: [{{job_name: fast, static_configs: [{{targets: ['{base_url.removeprefix('http://')}']}}]}}]\n"
    )
    port = free_port()
    with (tmp_path / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            found = await scraped(port, sources * streams)
        finally:
            process.terminate()
            process.wait(timeout=30)
    assert found == {"series": sources * streams, "up": 1.0}, (tmp_path / "prometheus.log").read_text()[-2000:]
    assert seen and all(headers.get("Content-Encoding") == "gzip" for headers in seen)
    assert all(headers["Content-Type"].startswith("application/openmetrics-text") for headers in seen)


async def scraped(port: int, expected: int, timeout: float = 60.0) -> dict[str, float]:
    """What Prometheus stored, once it holds `expected` series from an up target (or at timeout)."""
    queries = {"series": 'count({__name__="livestream_unique_viewers"})', "up": 'up{job="fast"}'}
    found: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and found != {"series": expected, "up": 1.0}:
        await asyncio.sleep(0.5)
        found = {}
        for name, expr in queries.items():
            url = f"http://127.0.0.1:{port}/api/v1/query?query={urllib.parse.quote(expr)}"
            try:
                status, _, body = await asyncio.to_thread(http_get, url)
            except OSError:  # Prometheus not listening yet
                continue
            result = json.loads(body)["data"]["result"] if status == 200 else []
            if result:
                found[name] = float(result[0]["value"][1])
    return found
