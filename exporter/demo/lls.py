"""An LLS (SwiftFederation) analytics simulator, written from lls-query-concurrent-viewers.md and
lls-notes.md with its own code.

`GET /lls/v1.0/analytics/delivery/queryConcurrentViewers` answers
`{"domain", "app", "stream", "protocol", "started", "ended", "data": [{"timestamp",
"concurrentViewers"}]}` (echoing only the filters asked for; `region` filters but is not echoed,
as on the page), one point per five minutes from the bucket holding `started` to the one holding
`ended`, each the peak of concurrent viewers in its bucket (the open bucket: the peak so far).
Without `started`/`ended` it answers the newest point only. Every `malformed_every`-th answer
also carries one point whose timestamp has lost a digit, like the page's own `20250518T18000Z`.

Every request must carry signature V2 headers, checked here with this module's own
canonicalisation and HMAC: 400 `AuthorizationFormat.Invalid`, 401 `AccessCredential.Invalid`,
400 `Timestamp.Invalid`, 400 `Signature.Expired` (X-SFD-Date over an hour from this clock),
400 `Nonce.Invalid`, 401 `Signature.NotMatch`. The signed URI is the path without the query.
Per access key, 100 requests per sliding minute and 1000 per sliding hour are answered; more get
429 `RateLimit.Exceeded` with a `Retry-After` (the pages name no 429 body: ours is an invention).
A missing `domain` gets 400 `LLS.Analytics.InvalidDomain` (also ours); a bad or reversed
`started`/`ended`, or a range over a day, gets the documented 400 `LLS.Analytics.InvalidTimestamp`.
Every answer carries `x-sfd-trace-id`. With `unix_timestamps` each point's `timestamp` is Unix
seconds, as the response table's type `Timestamp` may also be read, instead of the examples'
`20250518T173000Z` (and no malformed point is added).

Faults for tests and the demo: see exporter.demo.faults (`POST /_sim/fault`); `{"status": 500}`
answers `{"code": "InternalError", ...}`.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import string
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from exporter.demo.curve import audience
from exporter.demo.faults import FaultInjector

PATH = "/lls/v1.0/analytics/delivery/queryConcurrentViewers"
DOMAIN = "live.example.com"
APP = "demoapp"
STREAM_PEAKS = {"main": 3200.0, "backstage": 420.0, "lobby": 90.0}
PROTOCOL_SHARE = {"http-flv": 0.15, "ll-hls": 0.55, "hls/dash": 0.30}
REGION_SHARE = {"SG": 0.45, "ID": 0.25, "VN": 0.2, "TH": 0.1}
BUCKET = 300
PEAK_SAMPLE_STEP = 15
MAX_RANGE = 86400
SKEW_ALLOWED = 3600
LIMITS = ((100, 60.0), (1000, 3600.0))
_STAMP = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z")
_AUTHORIZATION = re.compile(r"HMAC-SHA256 ([^:\s]+):([0-9a-f]{64})")
_FAULT_CODES = {
    429: ("RateLimit.Exceeded", "Too many requests."),
    502: ("BadGateway", "Bad gateway."),
    503: ("ServiceUnavailable", "Service unavailable."),
}


def _fail(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status, headers=headers)


def _fault_body(status: int) -> web.Response:
    code, message = _FAULT_CODES.get(status, ("InternalError", "Internal server error."))
    return _fail(status, code, message)


def read_stamp(text: str | None) -> int | None:
    """`20250518T173000Z` (UTC) to Unix seconds; None unless it has exactly that shape."""
    found = _STAMP.fullmatch(text or "")
    if found is None:
        return None
    try:
        when = datetime(*(int(part) for part in found.groups()), tzinfo=UTC)
    except ValueError:
        return None
    return int(when.timestamp())


def write_stamp(seconds: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(seconds))


def string_to_sign(method: str, path: str, headers: Any, key_id: str, body: str) -> str:
    """Request line, `host` and `x-sfd-*` headers sorted by lower-cased name, key id, body."""
    picked = sorted(
        (name.lower(), value)
        for name, value in headers.items()
        if name.lower() == "host" or name.lower()[:6] == "x-sfd-"
    )
    return "\n".join([method, path, *(f"{name}:{value}" for name, value in picked), key_id, body])


def expected_signature(secret: str, to_sign: str) -> str:
    return hmac.new(secret.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


class LlsSimulator:
    provider = "lls"

    def __init__(
        self,
        access_key_id: str | None = None,
        access_key_secret: str | None = None,
        clock: Any = time.time,
        malformed_every: int = 5,
        unix_timestamps: bool = False,
    ) -> None:
        self.access_key_id = access_key_id or "".join(
            secrets.choice(string.ascii_letters + string.digits) for _ in range(16)
        )
        self.access_key_secret = access_key_secret or secrets.token_urlsafe(24)
        self.clock = clock
        self.malformed_every = malformed_every
        self.unix_timestamps = unix_timestamps
        self.answered = 0
        self.requests: list[dict[str, str]] = []
        self.faults = FaultInjector(_fault_body)
        self._sent: dict[str, list[deque[float]]] = {}

    def check_signature(self, request: web.Request) -> web.Response | None:
        """None when the request is signed by a known key within the hour, else the error."""
        found = _AUTHORIZATION.fullmatch(request.headers.get("Authorization", ""))
        if found is None:
            return _fail(400, "AuthorizationFormat.Invalid", "Authorization header is malformed.")
        key_id, signature = found.groups()
        if key_id != self.access_key_id:
            return _fail(401, "AccessCredential.Invalid", "The access key is invalid.")
        sent_at = read_stamp(request.headers.get("X-SFD-Date"))
        if sent_at is None:
            return _fail(400, "Timestamp.Invalid", "X-SFD-Date is missing or invalid.")
        if abs(self.clock() - sent_at) > SKEW_ALLOWED:
            return _fail(400, "Signature.Expired", "The request time is more than 1 hour from the server time.")
        nonce = request.headers.get("X-SFD-Nonce", "")
        if not (nonce.isdigit() and len(nonce) <= 18):
            return _fail(400, "Nonce.Invalid", "X-SFD-Nonce must be a number of at most 18 digits.")
        to_sign = string_to_sign(request.method, request.rel_url.raw_path, request.headers, key_id, "")
        if not hmac.compare_digest(signature, expected_signature(self.access_key_secret, to_sign)):
            return _fail(401, "Signature.NotMatch", "The request signature does not match.")
        return None

    def check_rate(self, key_id: str) -> web.Response | None:
        """Record the request if it fits both sliding windows, else answer 429."""
        now = self.clock()
        windows = self._sent.setdefault(key_id, [deque() for _ in LIMITS])
        wait = 0.0
        for (allowed, width), sent in zip(LIMITS, windows, strict=True):
            while sent and sent[0] <= now - width:
                sent.popleft()
            if len(sent) >= allowed:
                wait = max(wait, sent[-allowed] + width - now)
        if wait > 0:
            return _fail(429, "RateLimit.Exceeded", "Too many requests.", {"Retry-After": str(math.ceil(wait))})
        for sent in windows:
            sent.append(now)
        return None

    def peak(self, stream: str | None, protocol: str | None, region: str | None, start: int, end: float) -> int:
        """Peak concurrent viewers within [start, end), sampled every 15 seconds."""
        peaks = [STREAM_PEAKS[stream]] if stream else list(STREAM_PEAKS.values())
        share = (PROTOCOL_SHARE[protocol] if protocol else 1.0) * (REGION_SHARE.get(region, 0.0) if region else 1.0)
        best = 0.0
        moment = float(start)
        while moment < end:
            best = max(best, sum(audience(moment, peak * share, phase=peak) for peak in peaks))
            moment += PEAK_SAMPLE_STEP
        return round(best)

    async def handle_viewers(self, request: web.Request) -> web.Response:
        self.requests.append(dict(request.query))
        refused = self.check_signature(request) or self.check_rate(self.access_key_id)
        if refused is not None:
            return refused
        query = request.query
        if not query.get("domain"):
            return _fail(400, "LLS.Analytics.InvalidDomain", "Domain is empty or invalid.")
        now = self.clock()
        started, ended = query.get("started"), query.get("ended")
        first = read_stamp(started) if started is not None else None
        last = read_stamp(ended) if ended is not None else None
        if (started is not None and first is None) or (ended is not None and last is None):
            return _fail(400, "LLS.Analytics.InvalidTimestamp", "Timestamp is empty or invalid.")
        if last is None or last > now:
            last = int(now)
        if first is None:
            first = last
        if first > last or last - first > MAX_RANGE:
            return _fail(400, "LLS.Analytics.InvalidTimestamp", "Timestamp is empty or invalid.")
        stream, protocol, region = query.get("stream"), query.get("protocol"), query.get("region")
        known = (
            query["domain"] == DOMAIN
            and query.get("app", APP) == APP
            and (stream is None or stream in STREAM_PEAKS)
            and (protocol is None or protocol in PROTOCOL_SHARE)
        )
        data: list[dict[str, Any]] = []
        if known:
            for bucket in range(first // BUCKET * BUCKET, last + 1, BUCKET):
                viewers = self.peak(stream, protocol, region, bucket, min(bucket + BUCKET, now))
                stamp: Any = bucket if self.unix_timestamps else write_stamp(bucket)
                data.append({"timestamp": stamp, "concurrentViewers": viewers})
        self.answered += 1
        if data and self.malformed_every and not self.unix_timestamps and self.answered % self.malformed_every == 0:
            broken = write_stamp(last // BUCKET * BUCKET + BUCKET)
            data.append({"timestamp": broken[:-2] + "Z", "concurrentViewers": 10 * data[-1]["concurrentViewers"] + 1})
        echo = {key: query[key] for key in ("domain", "app", "stream", "started", "ended", "protocol") if key in query}
        return web.json_response({**echo, "data": data})

    @staticmethod
    async def add_trace_id(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["x-sfd-trace-id"] = secrets.token_hex(16)

    def app(self) -> web.Application:
        app = self.faults.application()
        app.on_response_prepare.append(self.add_trace_id)
        app.router.add_get(PATH, self.handle_viewers)
        return app

    def demo_sources(self, base_url: str) -> list[dict[str, Any]]:
        return [
            {
                "name": "demo-lls",
                "provider": "lls",
                "base_url": base_url,
                "access_key_id": self.access_key_id,
                "access_key_secret": self.access_key_secret,
                "domain": DOMAIN,
                "app": APP,
                "streams": ["main", "backstage"],
                "protocol": ["ll-hls", "hls/dash"],
                "interval": "20s",
                "labels": {"team": "demo"},
            },
            {
                "name": "demo-lls-region",
                "provider": "lls",
                "base_url": base_url,
                "access_key_id": self.access_key_id,
                "access_key_secret": self.access_key_secret,
                "domain": DOMAIN,
                "region": "SG",
            },
        ]


def simulator() -> LlsSimulator:
    return LlsSimulator()
