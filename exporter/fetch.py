"""The scheduler's side of a vendor request: one shared ClientSession, per-request bookkeeping.

Every request a provider makes goes through `SourceFetcher.get`, which waits for the source's
rate budget, applies the configured timeout, and records `requests_total{endpoint,code}` and the
duration. Transport failures become PollError with the contract's codes (`timeout`,
`connect_error`); a body the provider cannot use is counted as `invalid_body`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp

from exporter.poll import Answer, InvalidBody, PollError

log = logging.getLogger(__name__)


class Limiter(Protocol):
    async def acquire(self) -> float:
        """Wait for a slot in the budget; returns the seconds waited."""


class RequestObserver(Protocol):
    def request_done(self, endpoint: str, code: str, seconds: float) -> None: ...

    def rate_limited(self) -> None: ...


def parse_retry_after(value: str | None, now: float) -> float | None:
    """`Retry-After` as seconds, from either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


@dataclass
class HttpAnswer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            content_type = self.headers.get("Content-Type", "unknown content type")
            raise InvalidBody(f"answer is not JSON ({content_type})", status=self.status) from None

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("Retry-After"), time.time())


class SourceFetcher:
    """A provider's only way to the network, bound to one source's bookkeeping."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        timeout: float,
        observer: RequestObserver,
        limiter: Limiter | None = None,
        source: str = "",
    ) -> None:
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.observer = observer
        self.limiter = limiter
        self.source = source

    @asynccontextmanager
    async def get(
        self,
        endpoint: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Answer]:
        if self.limiter is not None and await self.limiter.acquire() > 0:
            self.observer.rate_limited()
        started = time.perf_counter()
        try:
            async with self.session.get(
                url, params=params, headers=headers, timeout=self.timeout, allow_redirects=False
            ) as response:
                answer = HttpAnswer(response.status, response.headers, await response.read())
        except TimeoutError:
            self._done(endpoint, url, params, headers, "timeout", time.perf_counter() - started)
            raise PollError(f"{endpoint}: no answer within {self.timeout.total:g}s", code="timeout") from None
        except aiohttp.ClientError as error:
            self._done(endpoint, url, params, headers, "connect_error", time.perf_counter() - started)
            raise PollError(
                f"{endpoint}: {type(error).__name__}: {_describe(error)}", code="connect_error"
            ) from None
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
