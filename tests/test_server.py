"""exporter.server on loopback: idle and slow-header connections are closed, the cap closes the
longest idle connection so a fresh request is always taken in."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from exporter.server import (
    _CONNECTIONS,
    MIN_CONNECTIONS,
    HTTPServer,
    LogThrottle,
    ServerLimits,
    may_close_while_waiting,
)

CLOSED_WITHIN = 10.0
"""Bound for "closed eventually": far above every timeout configured here."""

Start = Callable[[ServerLimits], Awaitable[HTTPServer]]
HELD = web.AppKey("held", asyncio.Event)


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="hello\n")


async def held_back(request: web.Request) -> web.Response:
    """A refusal that makes its client wait first, as basic auth does with a throttled client."""
    may_close_while_waiting(request)
    request.app[HELD].set()
    await asyncio.sleep(3600)
    return web.Response(status=429)


@pytest.fixture
async def start_server() -> AsyncIterator[Start]:
    servers: list[HTTPServer] = []

    async def start(limits: ServerLimits) -> HTTPServer:
        app = web.Application()
        app.router.add_get("/", hello)
        app.router.add_get("/held", held_back)
        app[HELD] = asyncio.Event()
        server = HTTPServer(app, "127.0.0.1", 0, limits=limits)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()
        await server.cleanup()


async def connect(server: HTTPServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.bound_port)


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """True once the server closed the connection (EOF or reset), read within the bound."""
    try:
        while await asyncio.wait_for(reader.read(65536), CLOSED_WITHIN):
            pass
    except ConnectionResetError:
        pass
    return True


async def get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CLOSED_WITHIN)
    await asyncio.wait_for(reader.readexactly(len(b"hello\n")), CLOSED_WITHIN)
    return head


async def test_a_connection_that_never_sends_a_request_is_closed_after_the_idle_timeout(start_server: Start) -> None:
    server = await start_server(ServerLimits(idle_timeout=0.2))
    reader, _ = await connect(server)
    assert await closed_by_server(reader)


async def test_a_keep_alive_connection_is_closed_once_idle_after_its_answer(start_server: Start) -> None:
    server = await start_server(ServerLimits(idle_timeout=0.2))
    reader, writer = await connect(server)
    assert (await get(reader, writer)).startswith(b"HTTP/1.1 200")
    assert await closed_by_server(reader)


async def test_a_header_still_incomplete_at_the_header_timeout_is_cut_off(start_server: Start) -> None:
    server = await start_server(ServerLimits(idle_timeout=3600, header_timeout=0.2))
    reader, writer = await connect(server)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
    assert await closed_by_server(reader)


async def test_a_connection_serving_requests_in_time_stays_open(start_server: Start) -> None:
    server = await start_server(ServerLimits(idle_timeout=3600, header_timeout=3600))
    reader, writer = await connect(server)
    for _ in range(3):
        assert (await get(reader, writer)).startswith(b"HTTP/1.1 200")
    assert server.guard.open_connections == 1


async def test_beyond_the_cap_the_longest_idle_connection_makes_room_for_a_fresh_request(start_server: Start) -> None:
    server = await start_server(ServerLimits(max_connections=MIN_CONNECTIONS))
    clients = [await connect(server) for _ in range(MIN_CONNECTIONS)]
    for reader, writer in clients:
        assert (await get(reader, writer)).startswith(b"HTTP/1.1 200")
    fresh_reader, fresh_writer = await connect(server)
    assert (await get(fresh_reader, fresh_writer)).startswith(b"HTTP/1.1 200")
    assert await closed_by_server(clients[0][0])
    assert server.guard.open_connections <= MIN_CONNECTIONS


def test_the_connection_cap_leaves_room_under_a_low_open_files_limit() -> None:
    limits = ServerLimits(max_connections=1000)
    assert limits.connection_cap(1_048_576) == 1000
    assert limits.connection_cap(1024) < 1024 // 2
    assert limits.connection_cap(20) == MIN_CONNECTIONS


def test_a_log_throttle_lets_one_line_per_kind_through_and_counts_the_rest() -> None:
    throttle = LogThrottle(every=3600)
    assert throttle.admit("emfile") == 0
    assert [throttle.admit("emfile") for _ in range(5)] == [None] * 5
    assert throttle.admit("slow header") == 0
    assert LogThrottle(every=0).admit("emfile") == 0


async def test_clients_held_back_before_a_refusal_do_not_hold_the_connection_cap(start_server: Start) -> None:
    server = await start_server(ServerLimits(max_connections=MIN_CONNECTIONS))
    held = [await connect(server) for _ in range(MIN_CONNECTIONS)]
    for _, writer in held:
        server.runner.app[HELD].clear()
        writer.write(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(server.runner.app[HELD].wait(), CLOSED_WITHIN)
    first_reader, _ = held[0]
    fresh_reader, fresh_writer = await connect(server)
    assert (await get(fresh_reader, fresh_writer)).startswith(b"HTTP/1.1 200")
    assert await closed_by_server(first_reader)


async def test_beyond_the_cap_a_connection_that_never_sent_a_request_goes_before_a_client_that_did(
    start_server: Start,
) -> None:
    server = await start_server(ServerLimits(max_connections=MIN_CONNECTIONS))
    scraper_reader, scraper_writer = await connect(server)
    assert (await get(scraper_reader, scraper_writer)).startswith(b"HTTP/1.1 200")
    flood = [await connect(server) for _ in range(MIN_CONNECTIONS + 3)]
    assert await closed_by_server(flood[0][0])
    assert (await get(scraper_reader, scraper_writer)).startswith(b"HTTP/1.1 200")


async def test_a_closed_connection_is_freed_without_waiting_for_a_full_garbage_collection(start_server: Start) -> None:
    server = await start_server(ServerLimits(idle_timeout=0.2))
    reader, _ = await connect(server)
    for _ in range(100):
        if _CONNECTIONS:
            break
        await asyncio.sleep(0.01)
    transports = [weakref.ref(connection.transport) for connection in _CONNECTIONS.values() if connection.transport]
    assert transports
    gc.disable()
    try:
        assert await closed_by_server(reader)
        for _ in range(100):
            if not _CONNECTIONS:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0)
        assert [transport() for transport in transports] == [None] * len(transports)
    finally:
        gc.enable()
