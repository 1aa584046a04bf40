"""A Prometheus remote-write 1.0 client: protobuf `WriteRequest` in snappy's block format.

The four messages involved (WriteRequest, TimeSeries, Label, Sample) are encoded by hand: a few
lines of varints and length prefixes, faster than the protobuf package for this shape and
without generated code (docs/design.md, for the measurement). Labels are sorted by name,
`__name__` included, as the protocol requires.

A 5xx or 429 is retried with backoff (honouring `Retry-After`); any other 4xx is final, and so
is Prometheus's 500 for a sample it will never take ("too old sample", "out of bounds"): those
samples are *rejected*. What is still refused after the last try has *failed*.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import aiohttp
import cramjam

from exporter import __version__
from exporter.fetch import parse_retry_after
from exporter.history.series import SeriesSet
from exporter.history.settings import HistorySettings
from exporter.poll import Labels

Outcome = Literal["sent", "rejected", "failed"]
Point = tuple[int, float]
"""(timestamp in milliseconds, value)."""
Series = tuple[Labels, list[Point]]

HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    "User-Agent": f"livestream-exporter/{__version__}",
}
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Pauses before each retry; after the last, the batch has failed."""
MAX_RETRY_PAUSE = 60.0
FINAL_500_WORDS = ("too old sample", "out of bounds", "out of order sample", "duplicate sample")
"""A 500 with one of these in its body is a refusal, not an outage: retrying cannot help."""
MAX_SAMPLES_PER_REQUEST = 2000
_DOUBLE = struct.Struct("<d")


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    return bytes((tag,)) + _varint(len(payload)) + payload


@lru_cache(maxsize=4096)
def _label(name: str, value: str) -> bytes:
    """A `TimeSeries.labels` entry; series of one source share most labels, so it is cached."""
    return _field(0x0A, _field(0x0A, name.encode()) + _field(0x12, value.encode()))


def _sample(ts: int, value: float) -> bytes:
    """A `TimeSeries.samples` entry: field 1 double, field 2 int64."""
    sample = b"\x09" + _DOUBLE.pack(value) + b"\x10" + _varint(ts)
    return bytes((0x12, len(sample))) + sample


def encode_write_request(series: Iterable[Series]) -> bytes:
    """`WriteRequest{timeseries: [TimeSeries{labels: [Label{name, value}], samples: [Sample{value,
    timestamp}]}]}`; labels sorted by name (with `__name__`), as given."""
    return b"".join(
        _field(0x0A, b"".join([*(_label(*label) for label in labels), *(_sample(*point) for point in points)]))
        for labels, points in series
    )


def compress(payload: bytes) -> bytes:
    """Snappy *block* format (not the framed stream format), as remote write requires."""
    return bytes(cramjam.snappy.compress_raw(payload))


def remote_series(series: SeriesSet) -> list[Series]:
    """Each series as remote write wants it: labels sorted by name with `__name__` among them,
    points in time order with millisecond timestamps."""
    return [
        (tuple(sorted((("__name__", name), *labels))), [(round(ts * 1000), value) for ts, value in points])
        for (name, labels), points in series.sorted_series()
    ]


def batches(series: list[Series], limit: int = MAX_SAMPLES_PER_REQUEST) -> list[list[Series]]:
    """Series grouped into requests of at most about `limit` samples; a longer series is split."""
    out: list[list[Series]] = [[]]
    size = 0
    for labels, points in series:
        for first in range(0, len(points), limit):
            chunk = points[first : first + limit]
            if size and size + len(chunk) > limit:
                out.append([])
                size = 0
            out[-1].append((labels, chunk))
            size += len(chunk)
    return [batch for batch in out if batch]


@dataclass(frozen=True, slots=True)
class Delivery:
    outcome: Outcome
    reason: str = ""


def read_secret(path: str, key: str) -> str:
    """A credential file's first line; OSError names the key and file, never the content."""
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise OSError(f"global.history.{key}: cannot read {path}: {error.strerror or error}") from None


class RemoteWriter:
    """Sends series to one receiver; one instance per exporter, sharing the exporter's session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: HistorySettings,
        timeout: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.session = session
        self.url = settings.remote_write_url
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.sleep = sleep
        self.headers = dict(HEADERS)
        self.auth: aiohttp.BasicAuth | None = None
        if settings.bearer_token_file:
            self.headers["Authorization"] = f"Bearer {read_secret(settings.bearer_token_file, 'bearer_token_file')}"
        if settings.basic_auth:
            password = read_secret(settings.basic_auth.password_file, "basic_auth.password_file")
            self.auth = aiohttp.BasicAuth(settings.basic_auth.username, password)

    async def send(self, series: list[Series]) -> Delivery:
        """One request with retries; the outcome covers every sample in `series`."""
        body = compress(encode_write_request(series))
        reason = ""
        for pause in (*RETRY_DELAYS, None):
            try:
                async with self.session.post(
                    self.url, data=body, headers=self.headers, auth=self.auth, timeout=self.timeout
                ) as response:
                    text = (await response.text(errors="replace")).strip()
                    status = response.status
                    retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
            except (aiohttp.ClientError, TimeoutError) as error:
                status, text, retry_after = 0, type(error).__name__, None
            if 200 <= status < 300:
                return Delivery("sent")
            reason = f"HTTP {status}: {text[:200]}" if status else f"no answer: {text}"
            final_500 = status == 500 and any(words in text.lower() for words in FINAL_500_WORDS)
            if (400 <= status < 500 and status != 429) or final_500:
                return Delivery("rejected", reason)
            if pause is None:
                break
            await self.sleep(min(max(pause, retry_after or 0.0), MAX_RETRY_PAUSE))
        return Delivery("failed", reason)
