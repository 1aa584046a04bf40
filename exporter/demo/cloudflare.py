"""A Cloudflare RealtimeKit simulator, written from cloudflare-realtimekit-livestream-daywise.md
and cloudflare-notes.md.

`GET /accounts/{account_id}/realtime/kit/{app_id}/analytics/livestreams/daywise` with
`Authorization: Bearer <token>`, optional `start_time`/`end_time` (Unix seconds; default the last
7 days up to now) and `filters`. The answer is `{"data": [{count, date, total_ingest_seconds,
total_viewer_seconds}, ...], "success": true}`, one entry per UTC day of the window, each the
running total of that day up to `end_time` (or now). Failures use Cloudflare's v4 shape
`{"success": false, "errors": [{"code", "message"}], "messages": [], "result": null}`; more than
1200 requests in 5 minutes on one token answer 429 with the body seen in practice and
`Retry-After`.

The simulated app runs a show every two hours: 90 minutes on air, then a break, with an audience
from `exporter.demo.curve`. Faults for tests and the demo: see exporter.demo.faults.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from exporter.demo.curve import audience
from exporter.demo.faults import FaultInjector

SHOW_EVERY = 7200
ON_AIR = 5400
PEAK_VIEWERS = 140.0
STEP = 60
DEFAULT_DAYS = 7
MAX_DAYS = 366
LIMIT_REQUESTS, LIMIT_SECONDS = 1200, 300
RATE_LIMIT_BODY = {
    "success": False,
    "errors": [{"code": 971, "message": "Please wait and consider throttling your request speed"}],
}
_MESSAGES = {
    400: (10001, "Invalid request"),
    403: (10000, "Authentication error"),
    404: (7003, "Could not route to the requested resource, perhaps your object identifier is invalid?"),
    500: (10002, "Internal server error"),
    502: (10002, "Bad gateway"),
    503: (10002, "Service unavailable"),
}


def failure(status: int, code: int | None = None, message: str | None = None) -> web.Response:
    if status == 429 and code is None:
        return web.json_response(RATE_LIMIT_BODY, status=429, headers={"Retry-After": str(LIMIT_SECONDS)})
    default_code, default_message = _MESSAGES.get(status, (10002, "error"))
    body = {
        "success": False,
        "errors": [{"code": code or default_code, "message": message or default_message}],
        "messages": [],
        "result": None,
    }
    return web.json_response(body, status=status)


def day_totals(day_start: float, until: float) -> dict[str, int]:
    """Sessions, ingest seconds and viewer seconds of one UTC day, counted up to `until`."""
    end = min(day_start + 86400, until)
    sessions = ingest = 0
    viewer_seconds = 0.0
    show = day_start
    while show < end:
        sessions += 1
        on_air_until = min(show + ON_AIR, end)
        ingest += int(on_air_until - show)
        ts = show
        while ts < on_air_until:
            width = min(STEP, on_air_until - ts)
            viewer_seconds += audience(ts, PEAK_VIEWERS, period=ON_AIR) * width
            ts += width
        show += SHOW_EVERY
    return {"count": sessions, "total_ingest_seconds": ingest, "total_viewer_seconds": int(viewer_seconds)}


class CloudflareSimulator:
    provider = "cloudflare"

    def __init__(
        self,
        api_token: str | None = None,
        account_id: str | None = None,
        app_id: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api_token = api_token or secrets.token_urlsafe(30)
        self.account_id = account_id or secrets.token_hex(16)
        self.app_id = app_id or secrets.token_hex(16)
        self.clock = clock
        self.faults = FaultInjector(failure)
        self.requests: list[dict[str, str]] = []
        self._sent: deque[float] = deque()

    def _rate_limited(self, now: float) -> bool:
        while self._sent and self._sent[0] <= now - LIMIT_SECONDS:
            self._sent.popleft()
        if len(self._sent) >= LIMIT_REQUESTS:
            return True
        self._sent.append(now)
        return False

    async def handle_daywise(self, request: web.Request) -> web.Response:
        self.requests.append(dict(request.query))
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or token != self.api_token:
            return failure(403)
        if request.match_info["account_id"] != self.account_id or request.match_info["app_id"] != self.app_id:
            return failure(404)
        now = self.clock()
        if self._rate_limited(now):
            return failure(429)
        try:
            end = int(request.query.get("end_time", int(now)))
            start = int(request.query.get("start_time", end - DEFAULT_DAYS * 86400))
        except ValueError:
            return failure(400, message="start_time and end_time must be Unix timestamps in seconds")
        if start > end:
            return failure(400, message="start_time must not be after end_time")
        first = datetime.fromtimestamp(start, UTC).date()
        last = datetime.fromtimestamp(end, UTC).date()
        if (last - first).days > MAX_DAYS:
            return failure(400, message="time range too long")
        until = min(end, now)
        data = []
        day = first
        while day <= last:
            day_start = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
            if day_start <= until:
                data.append({"date": day.isoformat(), **day_totals(day_start, until)})
            day += timedelta(days=1)
        return web.json_response({"data": data, "success": True})

    def app(self) -> web.Application:
        app = self.faults.application()
        app.router.add_get(
            "/accounts/{account_id}/realtime/kit/{app_id}/analytics/livestreams/daywise", self.handle_daywise
        )
        return app

    def demo_sources(self, base_url: str) -> list[dict[str, Any]]:
        return [
            {
                "name": "demo-cloudflare",
                "provider": "cloudflare",
                "base_url": base_url,
                "api_token": self.api_token,
                "account_id": self.account_id,
                "app_id": self.app_id,
                "interval": "30s",
            }
        ]


def simulator() -> CloudflareSimulator:
    return CloudflareSimulator()
