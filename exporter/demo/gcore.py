"""A Gcore streaming-statistics simulator, written from gcore-live-unique-viewers.md.

`GET /streaming/statistics/stream/viewers` with `Authorization: APIKey <key>`; `from` and `to`
are required (400 `{"data": [], "errors": ["from: query param is not set"]}` otherwise), the
answer is `[{"client": N, "metrics": {"streams": [[unix_ts, count], ...]}}]` with one point per
bucket of `granularity` (default 1h) from the bucket containing `from` up to `to`; the bucket
still open carries the viewers counted so far. Any numeric `stream_id` exists: the demo streams
have fixed peaks, any other id a stable one derived from its hash (see `stream_audience`), so a
benchmark can poll ten thousand streams.

With `flat_streams`, `streams` is one flat array (timestamp, count, timestamp, count, ...), as
the page's schema types it (an array of int64), instead of the example's pairs.

Faults for tests and the demo: see exporter.demo.faults (`POST /_sim/fault`).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import datetime
from typing import Any

from aiohttp import web

from exporter.demo.curve import audience
from exporter.demo.faults import FaultInjector

BUCKETS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400}
CLIENT_ID = 123
STREAM_PEAKS = {101: 2400.0, 102: 650.0, 103: 90.0}
MAX_POINTS = 10_000
_STATUS_TEXT = {
    429: "rate limit exceeded",
    500: "internal server error",
    502: "bad gateway",
    503: "service unavailable",
}


def stream_audience(stream_id: int) -> tuple[float, float]:
    """(peak, phase) of a stream. Other ids than the demo streams get a stable, plausible shape
    from a hash of the id: one in ten is idle (peak 0), the rest log-uniform from 5 to 20 000
    viewers, so most streams are small and a few are large, and their shows start at different
    times."""
    if stream_id in STREAM_PEAKS:
        return STREAM_PEAKS[stream_id], STREAM_PEAKS[stream_id]
    digest = int.from_bytes(hashlib.blake2b(str(stream_id).encode(), digest_size=8).digest(), "big")
    phase = float(digest % 1800)
    if digest % 10 == 0:
        return 0.0, phase
    return float(round(5 * 4000 ** ((digest >> 16) % 10_000 / 10_000))), phase


def _error(status: int, *messages: str) -> web.Response:
    return web.json_response({"data": [], "errors": list(messages)}, status=status)


def _parse_time(value: str) -> float | None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo is not None else None


class GcoreSimulator:
    provider = "gcore"

    def __init__(self, api_key: str | None = None, clock: Any = time.time, flat_streams: bool = False) -> None:
        self.flat_streams = flat_streams
        self.api_key = api_key or f"{secrets.randbelow(90000) + 10000}$" + secrets.token_hex(16)
        self.clock = clock
        self.faults = FaultInjector(lambda status: _error(status, _STATUS_TEXT.get(status, "error")))
        self.requests: list[dict[str, str]] = []

    def viewers(self, stream_id: int | None, start: float, width: int, now: float) -> int:
        """Unique viewers in one bucket: people present plus churn, prorated while open."""
        shapes = (
            [stream_audience(stream_id)] if stream_id is not None else [(peak, peak) for peak in STREAM_PEAKS.values()]
        )
        end = min(start + width, now)
        if end <= start:
            return 0
        churn = 1.0 + min(width, 3600) / 1200.0
        total = sum(audience((start + end) / 2, peak, phase=phase) * churn for peak, phase in shapes)
        return round(total * (end - start) / width) if end < start + width else round(total)

    async def handle_viewers(self, request: web.Request) -> web.Response:
        self.requests.append(dict(request.query))
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "apikey" or token != self.api_key:
            return web.json_response(
                {
                    "exception_class": "NotAuthenticated",
                    "message": "Authentication credentials were not provided or are invalid.",
                    "request_id": secrets.token_hex(8),
                },
                status=401,
            )
        query = request.query
        missing = [f"{name}: query param is not set" for name in ("from", "to") if name not in query]
        if missing:
            return _error(400, *missing)
        start, end = _parse_time(query["from"]), _parse_time(query["to"])
        if start is None or end is None:
            return _error(400, "from/to: must be date time in ISO 8601")
        granularity = query.get("granularity", "1h")
        if granularity not in BUCKETS:
            return _error(400, f"granularity: must be one of {', '.join(BUCKETS)}")
        stream_id = None
        if "stream_id" in query:
            if not query["stream_id"].isdigit():
                return web.json_response([])
            stream_id = int(query["stream_id"])
        width = BUCKETS[granularity]
        now = self.clock()
        first = int(start // width * width)
        last = min(end, now)
        if (last - first) / width > MAX_POINTS:
            return _error(400, "from/to: time frame is too long for this granularity")
        points = [
            [bucket, self.viewers(stream_id, bucket, width, now)] for bucket in range(first, int(last) + 1, width)
        ]
        streams = [value for point in points for value in point] if self.flat_streams else points
        return web.json_response([{"client": CLIENT_ID, "metrics": {"streams": streams}}])

    def app(self) -> web.Application:
        app = self.faults.application()
        app.router.add_get("/streaming/statistics/stream/viewers", self.handle_viewers)
        return app

    def demo_sources(self, base_url: str) -> list[dict[str, Any]]:
        return [
            {
                "name": "demo-gcore-streams",
                "provider": "gcore",
                "base_url": base_url,
                "api_key": self.api_key,
                "granularity": "1m",
                "stream_ids": list(STREAM_PEAKS)[:2],
                "interval": "15s",
                "labels": {"team": "demo"},
            },
            {
                "name": "demo-gcore-total",
                "provider": "gcore",
                "base_url": base_url,
                "api_key": self.api_key,
                "granularity": "5m",
                "interval": "30s",
            },
        ]


def simulator() -> GcoreSimulator:
    return GcoreSimulator()
