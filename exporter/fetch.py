"""The scheduler's side of a vendor request: one shared ClientSession, per-request bookkeeping.

Every request a provider makes goes through `SourceFetcher.get`, which waits for the source's
rate budget, applies the configured timeout, and records `requests_total{endpoint,code}` and the
duration. The body is read in chunks after decompression and given up past
`global.max_response_bytes`. Transport failures become PollError with the contract's codes
(`timeout`, `connect_error`, `too_large`); a body the provider cannot use is counted as
`invalid_body`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
from aiohttp.http_exceptions import LineTooLong

from exporter.backoff import MAX_RETRY_AFTER
from exporter.decode import NotJson, is_json_array, json_array_items, json_object_list
from exporter.poll import Answer, InvalidBody, PollError

log = logging.getLogger(__name__)


class Limiter(Protocol):
    def delay(self) -> float:
        """Seconds until one more request fits the budget (0 when it fits now)."""

    async def acquire(self) -> float:
        """Wait for a slot in the budget; returns the seconds waited."""


class RequestObserver(Protocol):
    def request_done(self, endpoint: str, code: str, seconds: float) -> None: ...

    def rate_limited(self) -> None: ...

    def waiting(self, seconds: float) -> None:
        """The source waits `seconds` for its rate budget or the vendor's `Retry-After`."""


DELTA_SECONDS = re.compile(r"[0-9]{1,12}")
"""ASCII digits only: `str.isdigit` also takes `²`, which `float` then refuses."""


def parse_retry_after(value: str | None, now: float) -> float | None:
    """`Retry-After` as seconds, from either delta-seconds or an HTTP date, at most
    `MAX_RETRY_AFTER`; an unreadable one is ignored (said at debug level)."""
    if not value:
        return None
    value = value.strip()
    if DELTA_SECONDS.fullmatch(value):
        seconds = float(value)
    else:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError, OverflowError, IndexError):
            log.debug("unreadable Retry-After ignored", extra={"retry_after": value[:40]})
            return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


WHOLE_JSON_BYTES = 256 * 1024
"""Answers up to this size are decoded in one `json.loads` call (well under a millisecond)."""


def hand_over_list(body: Any, path: tuple[str, ...], consume: Callable[[Any], None]) -> None:
    """What `json_object_list` does to the list at `path`, on a body already decoded."""
    parent = body
    for key in path[:-1]:
        parent = parent.get(key) if isinstance(parent, dict) else None
    if isinstance(parent, dict) and isinstance(parent.get(path[-1]), list):
        items = parent[path[-1]]
        parent[path[-1]] = []
        for item in items:
            consume(item)


@dataclass
class HttpAnswer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except RecursionError:
            raise InvalidBody("answer is JSON nested too deep to read", status=self.status) from None
        except (UnicodeDecodeError, json.JSONDecodeError):
            content_type = self.headers.get("Content-Type", "unknown content type")
            raise InvalidBody(f"answer is not JSON ({content_type})", status=self.status) from None

    async def json_items(self, what: str) -> AsyncIterator[Any]:
        """The items of a top-level JSON array, decoded a slice at a time so an answer of any
        size never holds the event loop long (see exporter.decode); InvalidBody when the body
        is not JSON ("answer is not JSON") or not an array ("expected a JSON list of <what>")."""
        if not is_json_array(self.body):
            self.json()
            raise InvalidBody(f"expected a JSON list of {what}", status=self.status)
        try:
            async for item in json_array_items(self.body):
                yield item
        except NotJson as error:
            raise InvalidBody(f"answer is not JSON: {error}", status=self.status) from None

    async def json_with_list(self, path: tuple[str, ...], consume: Callable[[Any], None]) -> Any:
        """The body as JSON, with the items of the list at `path` (object keys from the top,
        `("data",)`) handed to `consume` in order and that list left empty. An answer over
        WHOLE_JSON_BYTES is decoded a slice at a time and never holds the list (see
        exporter.decode: a 54 MiB answer of a million points would build ~400 MiB whole);
        smaller ones, nearly all, take `json()`. InvalidBody as `json()`."""
        if len(self.body) <= WHOLE_JSON_BYTES:
            body = self.json()
            hand_over_list(body, path, consume)
            return body
        try:
            return await json_object_list(self.body, path, consume)
        except NotJson as error:
            raise InvalidBody(f"answer is not JSON: {error}", status=self.status) from None

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("Retry-After"), time.time())


DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
READ_CHUNK = 256 * 1024
JOIN_IN_THREAD_BYTES = 1024 * 1024
"""Larger answers are joined in a worker thread: `bytes.join` copies without the GIL (80 MB, a
million Gcore clients, held the event loop ~50 ms; `bytes(bytearray)` holds the GIL throughout)."""


LARGE_ANSWER_BYTES = 4 * 1024 * 1024
"""An answer read past this size waits for its turn (see LargeAnswerTurn); the vendors' usual
answers are far smaller and never wait."""


class AnswerTooLarge(Exception):
    """The answer's body, after decompression, is larger than the configured limit."""


class LargeAnswerTurn:
    """Answers grow past `threshold` bytes one at a time. `max_response_bytes` bounds one answer;
    without a turn, a source whose 32 units in flight all answer a 200 MB body (or many sources
    at once) would hold 32 times that before each is given up. A waiting read holds at most
    `threshold` plus one chunk, and its request timeout still runs."""

    def __init__(self, threshold: int = LARGE_ANSWER_BYTES) -> None:
        self.threshold = threshold
        self.lock = asyncio.Lock()


async def read_capped(response: aiohttp.ClientResponse, limit: int, turn: LargeAnswerTurn | None = None) -> bytes:
    """The body, read in chunks after decompression and given up as soon as it passes `limit`:
    a gzip bomb, a 200 MB answer or an endless chunked one costs one chunk over the limit, not
    the whole body. What was read is dropped before the error leaves: the error's traceback
    keeps this frame, and the failed poll keeps the error."""
    if (
        response.content_length is not None
        and response.content_length > limit
        and "Content-Encoding" not in response.headers
    ):
        raise AnswerTooLarge
    chunks: list[bytes] = []
    size = 0
    holds_turn = False
    try:
        async for chunk in response.content.iter_chunked(READ_CHUNK):
            size += len(chunk)
            if size > limit:
                chunks.clear()
                raise AnswerTooLarge
            if turn is not None and not holds_turn and size > turn.threshold:
                await turn.lock.acquire()
                holds_turn = True
            chunks.append(chunk)
        if size < JOIN_IN_THREAD_BYTES:
            return b"".join(chunks)
        return await asyncio.to_thread(b"".join, chunks)
    finally:
        if holds_turn and turn is not None:
            turn.lock.release()


class SourceFetcher:
    """A provider's only way to the network, bound to one source's bookkeeping."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        timeout: float,
        observer: RequestObserver,
        limiter: Limiter | None = None,
        source: str = "",
        max_wait: float = math.inf,
        max_body: int = DEFAULT_MAX_RESPONSE_BYTES,
        large_answers: LargeAnswerTurn | None = None,
    ) -> None:
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.observer = observer
        self.limiter = limiter
        self.source = source
        self.max_wait = max_wait
        """The longest wait for the rate budget inside a poll (the source's interval): a longer
        one fails the poll at once, with the wait as its `Retry-After`, rather than hold it."""
        self.max_body = max_body
        """`global.max_response_bytes`: the largest answer read, after decompression."""
        self.large_answers = large_answers
        """Shared by every source of the process, so large answers are read one at a time."""

    @asynccontextmanager
    async def get(
        self,
        endpoint: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Answer]:
        if self.limiter is not None:
            await self._wait_for_budget(endpoint)
        started = time.perf_counter()
        try:
            async with self.session.get(
                url, params=params, headers=headers, timeout=self.timeout, allow_redirects=False
            ) as response:
                answer = HttpAnswer(
                    response.status, response.headers, await read_capped(response, self.max_body, self.large_answers)
                )
        except TimeoutError:
            self._done(endpoint, url, params, headers, "timeout", time.perf_counter() - started)
            raise PollError(f"{endpoint}: no answer within {self.timeout.total:g}s", code="timeout") from None
        except AnswerTooLarge:
            self._done(endpoint, url, params, headers, "too_large", time.perf_counter() - started)
            raise PollError(
                f"{endpoint}: answer larger than global.max_response_bytes ({self.max_body} bytes)", code="too_large"
            ) from None
        except aiohttp.ClientError as error:
            too_long = header_too_long(error)
            code = "connect_error" if too_long is None else "invalid_body"
            self._done(endpoint, url, params, headers, code, time.perf_counter() - started)
            if too_long is not None:
                raise PollError(f"{endpoint}: answer headers too long ({too_long})", code=code) from None
            raise PollError(f"{endpoint}: {type(error).__name__}: {_describe(error)}", code=code) from None
        elapsed = time.perf_counter() - started
        code = str(answer.status)
        try:
            yield answer
        except InvalidBody:
            code = "invalid_body"
            raise
        finally:
            self._done(endpoint, url, params, headers, code, elapsed)
            if answer.status == 429:
                self.observer.rate_limited()

    async def _wait_for_budget(self, endpoint: str) -> None:
        assert self.limiter is not None
        wait = self.limiter.delay()
        if wait > self.max_wait:
            self.observer.rate_limited()
            self.observer.waiting(wait)
            raise PollError(
                f"{endpoint}: rate budget: next request allowed in {wait:.0f}s", code="rate_limited", retry_after=wait
            )
        if wait > 0:
            self.observer.waiting(wait)
        if await self.limiter.acquire() > 0:
            self.observer.rate_limited()

    def _done(
        self,
        endpoint: str,
        url: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        code: str,
        seconds: float,
    ) -> None:
        """Count the request, and at debug level say what was asked: the URL without its query
        or credentials, and only the names of the parameters and headers, whose values may be
        keys or signatures."""
        self.observer.request_done(endpoint, code, seconds)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "vendor request",
                extra={
                    "source": self.source,
                    "endpoint": endpoint,
                    "url": redact_url(url),
                    "params": ",".join(sorted(params or ())),
                    "headers": ",".join(sorted(headers or ())),
                    "code": code,
                    "seconds": round(seconds, 4),
                },
            )


def redact_url(url: str) -> str:
    """`scheme://host:port/path`: no user info, no query, no fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _describe(error: aiohttp.ClientError) -> str:
    """A transport error without the request URL, whose query may carry a secret."""
    if isinstance(error, aiohttp.ClientConnectorError):
        return f"cannot connect to {error.host}:{error.port}"
    if isinstance(error, aiohttp.ClientResponseError):
        return f"HTTP {error.status}"
    return str(error).split(" url=")[0] or "request failed"


def header_too_long(error: BaseException) -> str | None:
    """aiohttp's words for an answer whose status or header line passes its limit ("Got more
    than 8190 bytes"), without the line itself; None for any other error. aiohttp reports it as
    `ClientResponseError: 400`, which reads as if the vendor had answered 400: the answer came, but
    cannot be read, so it is counted as `invalid_body`, not `connect_error`."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, LineTooLong):
            return str(cause.message).split(" when reading")[0]
        cause = cause.__cause__
    return None
