"""Vendor answers are bounded: `global.max_response_bytes` caps what is read after decompression,
so a gzip bomb, a huge body or an endless chunked one fails only that request (`too_large`),
read no further than one chunk past the limit, and closes the connection."""

from __future__ import annotations

import asyncio
import tracemalloc
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from exporter.config import parse_config
from exporter.fetch import DEFAULT_MAX_RESPONSE_BYTES, READ_CHUNK, SourceFetcher
from exporter.poll import PollError
from tests.conftest import RecordingObserver, peak_rss_mib

MiB = 1024 * 1024


def gzip_of_zeros(size: int) -> bytes:
    """`size` zero bytes as a gzip stream, built a MiB at a time (1 GiB packs into about 1 MB)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(MiB)
    parts = [packer.compress(zeros) for _ in range(size // MiB)]
    parts.append(packer.flush())
    return b"".join(parts)


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    return gzip_of_zeros(1024 * MiB)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def fetch_body(session: aiohttp.ClientSession, url: str, max_body: int) -> tuple[bytes, RecordingObserver]:
    observer = RecordingObserver()
    fetcher = SourceFetcher(session, 30.0, observer, max_body=max_body)
    async with fetcher.get("viewers", url) as answer:
        return answer.body, observer


async def fails_too_large(session: aiohttp.ClientSession, url: str, max_body: int) -> RecordingObserver:
    observer = RecordingObserver()
    fetcher = SourceFetcher(session, 30.0, observer, max_body=max_body)
    with pytest.raises(PollError) as caught:
        async with fetcher.get("viewers", url):
            pass
    assert caught.value.code == "too_large"
    assert "global.max_response_bytes" in caught.value.reason
    assert observer.requests == [("viewers", "too_large")]
    return observer


GCORE = {"name": "g", "provider": "gcore", "api_key": "k3y-value", "stream_ids": [1]}


def test_the_default_limit_is_64_mib_and_takes_units(tmp_path: Path) -> None:
    config = parse_config({"sources": [GCORE]}, "t.yaml", tmp_path)
    assert config.global_.max_response_bytes == DEFAULT_MAX_RESPONSE_BYTES == 64 * MiB
    config = parse_config({"global": {"max_response_bytes": "2MiB"}, "sources": [GCORE]}, "t.yaml", tmp_path)
    assert config.global_.max_response_bytes == 2 * MiB


async def test_a_gzip_bomb_is_given_up_one_chunk_past_the_limit(serve_app: Any, session: Any, gzip_bomb: bytes) -> None:
    async def bomb(request: web.Request) -> web.Response:
        return web.Response(body=gzip_bomb, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})

    app = web.Application()
    app.router.add_get("/bomb", bomb)
    url = await serve_app(app) + "/bomb"
    tracemalloc.start()
    try:
        await fails_too_large(session, url, max_body=4 * MiB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * MiB, f"{peak / MiB:.0f} MiB held while reading a bomb capped at 4 MiB"


async def test_a_declared_length_over_the_limit_fails_before_the_body_is_read(serve_app: Any, session: Any) -> None:
    sent: list[int] = []

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = 200 * 1000 * 1000
        await response.prepare(request)
        chunk = bytes(READ_CHUNK)
        try:
            for _ in range(200 * 1000 * 1000 // READ_CHUNK):
                await response.write(chunk)
                sent.append(len(chunk))
        except (ConnectionResetError, ConnectionError):
            pass
        return response

    app = web.Application()
    app.router.add_get("/huge", huge)
    await fails_too_large(session, await serve_app(app) + "/huge", max_body=8 * MiB)
    assert sum(sent) < 100 * 1000 * 1000


async def test_an_endless_chunked_body_fails_and_its_connection_is_closed(serve_app: Any, session: Any) -> None:
    closed = asyncio.Event()

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = b"[" + b"0," * (READ_CHUNK // 2)
        try:
            while True:
                await response.write(chunk)
        except (ConnectionResetError, ConnectionError):
            closed.set()
        return response

    app = web.Application()
    app.router.add_get("/endless", endless)
    await fails_too_large(session, await serve_app(app) + "/endless", max_body=2 * MiB)
    await asyncio.wait_for(closed.wait(), timeout=30)


@pytest.mark.parametrize(("size", "fits"), [(1000, True), (1001, False)])
async def test_an_answer_exactly_at_the_limit_is_read_and_one_byte_more_is_not(
    serve_app: Any, session: Any, size: int, fits: bool
) -> None:
    async def sized(request: web.Request) -> web.Response:
        return web.Response(body=b"7" * size, content_type="application/json")

    app = web.Application()
    app.router.add_get("/sized", sized)
    url = await serve_app(app) + "/sized"
    if fits:
        body, observer = await fetch_body(session, url, max_body=1000)
        assert (len(body), observer.requests) == (1000, [("viewers", "200")])
    else:
        await fails_too_large(session, url, max_body=1000)


async def test_a_chunked_answer_within_the_limit_is_read_whole(serve_app: Any, session: Any) -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        response.enable_compression(web.ContentCoding.gzip)
        await response.prepare(request)
        for _ in range(10):
            await response.write(b"x" * READ_CHUNK)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/chunked", chunked)
    body, _ = await fetch_body(session, await serve_app(app) + "/chunked", max_body=10 * READ_CHUNK)
    assert body == b"x" * (10 * READ_CHUNK)


class BombVendor:
    """A Gcore endpoint that answers every poll with a 1 GiB gzip bomb."""

    def __init__(self, bomb: bytes) -> None:
        self.bomb = bomb

    async def viewers(self, request: web.Request) -> web.Response:
        return web.Response(body=self.bomb, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/streaming/statistics/stream/viewers", self.viewers)
        return app


def test_a_running_exporter_fed_gzip_bombs_stays_small_and_keeps_serving_metrics(
    run_exporter: Any, simulator_thread: Any, tmp_path: Path, gzip_bomb: bytes
) -> None:
    vendor = simulator_thread(BombVendor(gzip_bomb))
    config = tmp_path / "config.yaml"
    config.write_text(
        f"global: {{state_dir: {str(tmp_path)!r}}}\nsources:\n"
        f"  - {{name: bombed, provider: gcore, base_url: {vendor.base_url!r}, api_key: k3y-value, "
        "stream_ids: [1], interval: 1s}\n"
    )
    exporter = run_exporter("--config", str(config))
    too_large = 'livestream_exporter_requests_total{code="too_large",endpoint="stream_viewers",provider="gcore",source="bombed"}'

    def bombs_survived() -> bool:
        body = exporter.metrics()
        return any(line.startswith(too_large) and float(line.split()[-1]) >= 3 for line in body.splitlines())

    exporter.wait_until(bombs_survived, timeout=60)
    assert 'livestream_exporter_source_up{provider="gcore",source="bombed"} 0.0' in exporter.metrics()
    assert peak_rss_mib(exporter.proc.pid) < 300
