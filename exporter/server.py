"""The listening HTTP server, hardened against connection floods.

aiohttp alone keeps an idle connection for an hour, has no header-read deadline and no cap on
open connections; once the process runs out of file descriptors, asyncio's accept loop logs a
traceback many times a second and nothing answers any more, scrapes included. Here:

- an idle connection (no complete request header since it opened or since its last answer) is
  closed after `idle_timeout`; a request whose header has begun arriving must complete it within
  `header_timeout` (a slow-header client holds a descriptor for no longer than that);
- at most `max_connections` are open, fewer when the open-files limit is low (room is kept for
  vendor connections and files). A connection beyond the cap closes the one idle the longest, so
  a fresh scrape is always taken in; when even accept() runs out of descriptors, the oldest idle
  quarter is closed;
- the soft open-files limit is raised to the hard one at start (as every Go exporter does);
- the trouble a flood causes is logged once per kind per minute, with the count left out.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import resource
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger(__name__)

ACCEPT_OUT_OF_RESOURCE = "socket.accept() out of system resource"
THROTTLED_LOGGERS = ("aiohttp.server", "aiohttp.web")
MIN_CONNECTIONS = 16
UNLIMITED_FILES = 1 << 20
"""What an unlimited open-files limit counts as."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def may_close_while_waiting(request: web.Request) -> None:
    """Mark a request that only waits before a refusal (a throttled client held back): its
    connection may then be closed to make room, as an idle one would."""
    connection = _CONNECTIONS.get(request.protocol)  # type: ignore[call-overload]
    if connection is not None:
        connection.held_back = True


@dataclass(frozen=True)
class ServerLimits:
    """How long and how many connections may stay open. The defaults suit Prometheus scraping
    every 15 s to 1 min over keep-alive."""

    idle_timeout: float = 75.0
    header_timeout: float = 10.0
    max_connections: int = 1000
    backlog: int = 128
    log_every: float = 60.0

    def connection_cap(self, open_files: int) -> int:
        """`max_connections`, or half the open-files limit left after the process's own
        descriptors: asyncio accepts up to `backlog` connections per loop turn before any is
        counted, and a connection closed to make room frees its descriptor a turn later, so
        a flood overshoots the cap by a few bursts before it is brought back."""
        own = min(128, open_files // 8)
        return max(MIN_CONNECTIONS, min(self.max_connections, (open_files - own) // 2))


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return UNLIMITED_FILES
    target = UNLIMITED_FILES if hard == resource.RLIM_INFINITY else hard
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


@dataclass
class LogThrottle:
    """Lets one line per kind through per `every` seconds and counts the rest."""

    every: float
    _windows: dict[str, tuple[float, int]] = field(default_factory=dict)

    def admit(self, kind: str) -> int | None:
        """None to drop this line; else how many of its kind were dropped since the last one."""
        now = time.monotonic()
        started, dropped = self._windows.get(kind, (float("-inf"), 0))
        if now - started < self.every:
            self._windows[kind] = (started, dropped + 1)
            return None
        self._windows[kind] = (now, 0)
        return dropped


class _ThrottleFilter(logging.Filter):
    def __init__(self, throttle: LogThrottle) -> None:
        super().__init__()
        self.throttle = throttle

    def filter(self, record: logging.LogRecord) -> bool:
        kind = f"{record.name}:{record.msg}"
        if record.exc_info and record.exc_info[0] is not None:
            kind += f":{record.exc_info[0].__name__}"
        dropped = self.throttle.admit(kind)
        if dropped:
            record.suppressed = dropped
        return dropped is not None


class _Connection(asyncio.Protocol):
    """One client connection: aiohttp's handler inside, with the bookkeeping the cap and the
    header deadline need around it."""

    def __init__(self, inner: RequestHandler, guard: ConnectionGuard) -> None:
        self.inner = inner
        self.guard = guard
        self.transport: asyncio.Transport | None = None
        self.last_active = time.monotonic()
        self.requests_running = 0
        self.requests_served = 0
        self.held_back = False
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        _CONNECTIONS[self.inner] = self
        self.guard.opened(self)
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_deadline()
        _CONNECTIONS.pop(self.inner, None)
        self.guard.closed(self)
        self.inner.connection_lost(exc)
        unlink(self.transport)

    def data_received(self, data: bytes) -> None:
        if not self.requests_running and self._header_deadline is None:
            loop = asyncio.get_running_loop()
            self._header_deadline = loop.call_later(self.guard.limits.header_timeout, self._header_too_slow)
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    @property
    def evictable(self) -> bool:
        return not self.requests_running or self.held_back

    def request_started(self) -> None:
        self._stop_header_deadline()
        self.requests_running += 1
        self.last_active = time.monotonic()

    def request_finished(self) -> None:
        self.requests_running -= 1
        self.requests_served += 1
        self.held_back = False
        self.last_active = time.monotonic()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _stop_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _header_too_slow(self) -> None:
        self._header_deadline = None
        if not self.requests_running:
            self.guard.report("request header not complete in time; connection closed")
            self.close()


_CONNECTIONS: dict[RequestHandler, _Connection] = {}
"""Every open connection of every server in this process, by aiohttp's handler."""


def unlink(transport: asyncio.BaseTransport | None) -> None:
    """Let a closed connection's transport be freed when its last reference goes. CPython 3.11's
    selector transport keeps a bound method of itself (`_read_ready_cb`): a reference cycle that
    only a full garbage collection frees, and the exporter runs those rarely (exporter.memory).
    A hostile soak's connection floods left 50 MB of closed transports waiting for one."""
    if transport is not None and hasattr(transport, "_read_ready_cb"):
        transport._read_ready_cb = None


class _Refused(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.abort()  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        unlink(self.transport)
        self.transport = None


class ConnectionGuard:
    """Counts open connections, closes the longest idle ones when there are too many, and
    knows (through its middleware) which connections are serving a request."""

    def __init__(self, limits: ServerLimits, cap: int, throttle: LogThrottle) -> None:
        self.limits = limits
        self.cap = cap
        self.throttle = throttle
        self._open: dict[RequestHandler, _Connection] = {}

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def factory(self, server: web.Server) -> Callable[[], asyncio.Protocol]:
        def make() -> asyncio.Protocol:
            if len(self._open) >= self.cap:
                if not self.shed(1):
                    self.report("connection limit reached and every connection is busy; new connection refused")
                    return _Refused()
                self.report("connection limit reached; closing the longest idle connections")
            return _Connection(server(), self)

        return make

    def opened(self, connection: _Connection) -> None:
        self._open[connection.inner] = connection

    def closed(self, connection: _Connection) -> None:
        self._open.pop(connection.inner, None)

    def shed(self, count: int) -> int:
        """Close up to `count` connections that serve no request (or only hold a client back):
        those that never sent a request first (a flood's), then the longest idle (a scraper's
        keep-alive connection is idle for a scrape interval, longer than a fresh flood's)."""
        idle = (connection for connection in self._open.values() if connection.evictable)
        victims = heapq.nsmallest(
            count, idle, key=lambda connection: (connection.requests_served > 0, connection.last_active)
        )
        for connection in victims:
            self.closed(connection)
            connection.close()
        return len(victims)

    def report(self, message: str) -> None:
        dropped = self.throttle.admit(message)
        if dropped is not None:
            log.warning(message, extra={"open_connections": len(self._open), "suppressed": dropped})

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        connection = self._open.get(request.protocol)  # type: ignore[call-overload]
        if connection is None:
            return await handler(request)
        connection.request_started()
        try:
            return await handler(request)
        finally:
            connection.request_finished()


class _GuardedSite(web.BaseSite):
    """TCPSite, except that connections are made through the guard."""

    def __init__(
        self,
        runner: web.AppRunner,
        host: str | None,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None,
        guard: ConnectionGuard,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=guard.limits.backlog)
        self.host = host
        self.port = port
        self.guard = guard
        self.listening: asyncio.AbstractServer | None = None

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self.host or '0.0.0.0'}:{self.port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert isinstance(server, web.Server)
        loop = asyncio.get_running_loop()
        self._server = self.listening = await loop.create_server(
            self.guard.factory(server),
            self.host,
            self.port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            ssl_handshake_timeout=self.guard.limits.header_timeout if self._ssl_context else None,
        )


class HTTPServer:
    """The app on `host:port` (TLS when `ssl_context` is given) under `limits`."""

    def __init__(
        self,
        app: web.Application,
        host: str | None,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        limits: ServerLimits | None = None,
        shutdown_timeout: float = 1.0,
    ) -> None:
        self.limits = limits or ServerLimits()
        self.throttle = LogThrottle(self.limits.log_every)
        self.guard = ConnectionGuard(self.limits, self.limits.connection_cap(raise_open_files_limit()), self.throttle)
        app.middlewares.insert(0, self.guard.middleware)
        self.runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=shutdown_timeout,
            keepalive_timeout=self.limits.idle_timeout,
        )
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.site: _GuardedSite | None = None
        self._filter = _ThrottleFilter(self.throttle)
        self._previous_handler: Any = None

    @property
    def bound_port(self) -> int:
        assert self.site is not None and self.site.listening is not None
        return int(self.site.listening.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Listen; raises OSError when the address cannot be bound."""
        loop = asyncio.get_running_loop()
        self._previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._loop_exception)
        for name in THROTTLED_LOGGERS:
            logging.getLogger(name).addFilter(self._filter)
        await self.runner.setup()
        self.site = _GuardedSite(self.runner, self.host, self.port, ssl_context=self.ssl_context, guard=self.guard)
        await self.site.start()

    async def stop(self) -> None:
        """Stop listening; requests in progress may still finish."""
        if self.site is not None:
            await self.site.stop()

    async def cleanup(self) -> None:
        await self.runner.cleanup()
        for name in THROTTLED_LOGGERS:
            logging.getLogger(name).removeFilter(self._filter)
        asyncio.get_running_loop().set_exception_handler(self._previous_handler)

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        if message == ACCEPT_OUT_OF_RESOURCE:
            closed = self.guard.shed(max(1, self.guard.open_connections // 4))
            error = context.get("exception")
            dropped = self.throttle.admit(message)
            if dropped is not None:
                log.warning(
                    "cannot accept connections: out of file descriptors or memory; closing the longest idle ones",
                    extra={
                        "error": getattr(error, "strerror", None) or str(error),
                        "closed": closed,
                        "open_connections": self.guard.open_connections,
                        "suppressed": dropped,
                    },
                )
            return
        if self.throttle.admit(f"loop:{message}:{type(context.get('exception')).__name__}") is not None:
            if self._previous_handler is not None:
                self._previous_handler(loop, context)
            else:
                loop.default_exception_handler(context)
