"""LLS (SwiftFederation) delivery analytics: peak concurrent viewers per stream and protocol.

Follows provider-docs/lls-query-concurrent-viewers.md
(`GET /lls/v1.0/analytics/delivery/queryConcurrentViewers`) and lls-notes.md (signature V2,
`{code, message}` error bodies, `x-sfd-trace-id`, 100 requests per minute and 1000 per hour).
One request, one unit and one series per configured (stream, protocol) combination; the newest
point whose timestamp parses is published, with the labels the answer echoes:

    livestream_concurrent_viewers{domain="live.example.com",app="demoapp",stream="main",
                                  region="all",protocol="ll-hls"} 2873

A filter the source does not set reads `all` (the vendor's total over that dimension).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator

from exporter.families import CONCURRENT_VIEWERS
from exporter.history.points import HistoryResult, TimedSample, history_units
from exporter.poll import WHOLE_SOURCE, Fetcher, InvalidBody, PollResult, RateLimit, Sample, ShardView
from exporter.providers import register
from exporter.providers.base import NewestPoint, Provider, is_count, poll_units, raise_unless_ok
from exporter.settings import NonEmpty, Secret, SourceSettings, format_duration, one_of

PATH = "/lls/v1.0/analytics/delivery/queryConcurrentViewers"
PROTOCOLS = ("http-flv", "ll-hls", "hls/dash")
POINT_SECONDS = 300
"""The page's example spaces points five minutes apart."""
DEFAULT_INTERVAL = 60.0
ALL = "all"
SFD_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
_SFD_TIME = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z")
EXPIRED_HINT = "check this host's clock: X-SFD-Date must be within 1 hour of the vendor's"
WINDOW_NAMES = {60.0: "minute", 3600.0: "hour"}
HISTORY_RANGE_PER_REQUEST = 86400
"""The longest `started`..`ended` one history request asks for: a day."""


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _no_repeats(values: list[str] | None) -> list[str] | None:
    if values is not None:
        repeated = sorted({value for value in values if values.count(value) > 1})
        if repeated:
            raise ValueError(f"lists {', '.join(repeated)} more than once")
    return values


ProtocolName = one_of(*PROTOCOLS)


class LlsSettings(SourceSettings):
    min_interval = 30.0
    """Points are five minutes apart, and a key has 100 calls a minute and 1000 an hour."""

    access_key_id: NonEmpty
    access_key_secret: Secret
    fzone: NonEmpty = "SG"
    domain: NonEmpty
    app: NonEmpty | None = None
    streams: Annotated[list[NonEmpty] | None, AfterValidator(_no_repeats)] = None
    region: NonEmpty | None = None
    protocol: Annotated[
        list[ProtocolName] | None,  # type: ignore[valid-type]
        BeforeValidator(_as_list),
        AfterValidator(_no_repeats),
    ] = None


def sfd_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime(SFD_TIME_FORMAT)


def parse_sfd_time(value: Any) -> float | None:
    """`YYYYMMDDTHHMMSSZ` to Unix time, or None. Strict on purpose: `strptime` would read the
    page's own malformed `20250518T18000Z` as 18:00:00 and publish a point nobody sent."""
    match = _SFD_TIME.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return None
    try:
        return datetime(*map(int, match.groups()), tzinfo=UTC).timestamp()
    except ValueError:
        return None


MILLISECONDS_FROM = 1e11
"""A numeric timestamp this large is in milliseconds: in seconds it would be past the year 5000."""


def point_time(value: Any) -> float | None:
    """A point's `timestamp`: the table types it `Timestamp` while the examples write
    `20250518T173000Z`, so a JSON number is read as Unix time (seconds, or milliseconds when
    that large) and a string as the examples' format."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value >= MILLISECONDS_FROM else float(value)
        return seconds if 0 < seconds < MILLISECONDS_FROM else None
    return parse_sfd_time(value)


def sign_v2(secret: str, method: str, uri: str, headers: Mapping[str, str], access_key_id: str, body: str = "") -> str:
    """SwiftFederation signature V2 (lls-notes.md): lower-case hex HMAC-SHA256, keyed with the
    secret, of `METHOD\\nURI\\n<canonical headers>ACCESS_KEY_ID\\nBODY`, where the canonical
    headers are `host` and every `x-sfd-*` header as `name:value\\n`, names lower-cased, sorted."""
    signed = sorted(
        (name.lower(), value)
        for name, value in headers.items()
        if name.lower() == "host" or name.lower().startswith("x-sfd-")
    )
    canonical = "".join(f"{name}:{value}\n" for name, value in signed)
    text = f"{method.upper()}\n{uri}\n{canonical}{access_key_id}\n{body}"
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def signed_uri(path: str, query: Mapping[str, str]) -> str:
    """The URI the signature covers: the path alone, without the query string.

    The pages list the "request path" among the signed parts and their worked example has no
    query, so this is our reading (docs/vendors/lls.md); this function is the only place that
    decides it, and the simulator makes the same reading with its own code.
    """
    return path


class SignedAtSend(Mapping[str, str]):
    """Request headers that are signed when first read, i.e. when the request leaves.

    The fetcher may hold a request for the key's rate budget (after a 429, up to the vendor's
    Retry-After); signing then rather than when the poll began keeps `X-SFD-Date` within the
    vendor's one hour and gives every request its own fresh date and nonce.
    """

    def __init__(self, build: Callable[[], dict[str, str]]) -> None:
        self._build = build
        self._headers: dict[str, str] | None = None

    def _signed(self) -> dict[str, str]:
        if self._headers is None:
            self._headers = self._build()
        return self._headers

    def __getitem__(self, name: str) -> str:
        return self._signed()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._signed())

    def __len__(self) -> int:
        return len(self._signed())

    def fresh(self) -> SignedAtSend:
        return SignedAtSend(self._build)


@dataclass(frozen=True, slots=True)
class Query:
    """The filters of one unit: a stream and a protocol (None: the vendor's total over it)."""

    stream: str | None
    protocol: str | None

    @property
    def unit(self) -> str:
        parts = [f"{key}={value}" for key, value in (("stream", self.stream), ("protocol", self.protocol)) if value]
        return ",".join(parts) or ALL


TRACE_HEADER = "x-sfd-trace-id"


def vendor_words(body: Any) -> str | None:
    """The vendor's `code: message`, with a hint for a skewed clock."""
    if not isinstance(body, dict) or not body.get("code"):
        return None
    reason = f"{body['code']}: {body.get('message') or 'no message'}"
    if body["code"] == "Signature.Expired":
        reason += f" ({EXPIRED_HINT})"
    return reason


def _echo(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    return value if isinstance(value, str) and value else None


@register
class Lls(Provider):
    name = "lls"
    settings_model = LlsSettings
    default_base_url = "https://open-api.swiftfederation.com"
    families = (CONCURRENT_VIEWERS,)
    rate_limits = (RateLimit(100, 60), RateLimit(1000, 3600))
    history_supported = True
    settings: LlsSettings

    def __init__(self, settings: LlsSettings, shard: ShardView = WHOLE_SOURCE) -> None:
        super().__init__(settings, shard)
        self.clock: Callable[[], float] = time.time
        self._queries = {
            query.unit: query
            for query in (
                Query(stream, protocol)
                for stream in self.settings.streams or [None]
                for protocol in self.settings.protocol or [None]
            )
        }

    def units(self) -> list[str]:
        return list(self._queries)

    def default_interval(self) -> float:
        return DEFAULT_INTERVAL

    def rate_limit_key(self) -> str:
        return self.settings.access_key_id

    @classmethod
    def default_intervals(cls, sources: list[SourceSettings]) -> dict[str, float]:
        return plan_budget(sources)[0]

    @classmethod
    def check_sources(cls, sources: list[SourceSettings]) -> list[tuple[SourceSettings, str, str]]:
        return plan_budget(sources)[1]

    def window(self, now: float) -> tuple[str, str]:
        """From the start of the point before the newest one to now: the newest point and one
        before it (in case the newest arrives late), never history already seen."""
        start = (now // POINT_SECONDS) * POINT_SECONDS - POINT_SECONDS
        return sfd_time(start), sfd_time(now)

    def params(self, query: Query, now: float) -> dict[str, str]:
        return self.range_params(query, *self.window(now))

    def range_params(self, query: Query, started: str, ended: str) -> dict[str, str]:
        optional = {
            "app": self.settings.app,
            "stream": query.stream,
            "region": self.settings.region,
            "protocol": query.protocol,
        }
        return {
            "domain": self.settings.domain,
            **{key: value for key, value in optional.items() if value},
            "started": started,
            "ended": ended,
        }

    def headers(self, url: str, params: Mapping[str, str]) -> dict[str, str]:
        """Signature V2 headers with a fresh date and nonce, signed now."""
        parts = urlsplit(url)
        headers = {
            "Host": parts.netloc.rpartition("@")[2],
            "X-SFD-Date": sfd_time(self.clock()),
            "X-SFD-Nonce": str(secrets.randbelow(90000) + 10000),
            "X-SFD-Signature-Version": "2",
            "X-SFD-FZone": self.settings.fzone,
            "Content-Type": "application/json; charset=utf-8",
        }
        key_id = self.settings.access_key_id
        signature = sign_v2(
            self.settings.access_key_secret.get_secret_value(),
            "GET",
            signed_uri(parts.path, params),
            headers,
            key_id,
        )
        headers["Authorization"] = f"HMAC-SHA256 {key_id}:{signature}"
        return headers

    async def poll(self, fetch: Fetcher, now: datetime) -> PollResult:
        now_ts = now.timestamp()
        url = f"{self.base_url}{PATH}"

        async def poll_query(unit: str, result: PollResult) -> list[Sample]:
            query = self._queries[unit]
            params = self.params(query, now_ts)
            headers = SignedAtSend(lambda: self.headers(url, params))
            async with fetch.get("concurrent_viewers", url, params=params, headers=headers) as answer:
                raise_unless_ok(answer, vendor_words, TRACE_HEADER)
                newest = self.newest_point()
                return self.parse(await answer.json_with_list(("data",), newest.add), query, result, newest)

        return await poll_units(self.active_units(), poll_query)

    def newest_point(self) -> NewestPoint:
        return NewestPoint(lambda point: point_time(point.get("timestamp")), "concurrentViewers")

    def parse(
        self, body: Any, query: Query, result: PollResult, handed_over: NewestPoint | None = None
    ) -> list[Sample]:
        """`{domain, app, stream, protocol, data: [{timestamp, concurrentViewers}]}` to the newest
        point; points whose timestamp or value is unusable are counted and skipped. `handed_over`
        holds the `data` points already read while decoding (`Answer.json_with_list`)."""
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise InvalidBody("expected an object with a data list")
        points = handed_over or self.newest_point()
        for point in body["data"]:
            points.add(point)
        newest = points.finish(result)
        if newest is None:
            return []
        return [self.sample(body, query, newest[1])]

    def sample(self, body: dict[str, Any], query: Query, viewers: float) -> Sample:
        settings = self.settings
        return CONCURRENT_VIEWERS.sample(
            viewers,
            domain=_echo(body, "domain") or settings.domain,
            app=_echo(body, "app") or settings.app or ALL,
            stream=_echo(body, "stream") or query.stream or ALL,
            region=_echo(body, "region") or settings.region or ALL,
            protocol=_echo(body, "protocol") or query.protocol or ALL,
        )

    async def history(self, fetch: Fetcher, start: float, end: float) -> HistoryResult:
        """Every point stamped in `start`..`end` whose five minutes are over (an open point's
        peak still grows, and a receiver keeps the first value it gets for a time), asked for a
        day at a time, through the same rate budget as the live poll."""
        closed_before = self.clock() - POINT_SECONDS
        ranges = []
        first = start
        while first <= end:
            last = min(first + HISTORY_RANGE_PER_REQUEST, end)
            ranges.append((first, last))
            first = last + 1
        url = f"{self.base_url}{PATH}"

        async def history_of(unit: str, result: HistoryResult) -> list[TimedSample]:
            query = self._queries[unit]
            found: dict[float, TimedSample] = {}
            viewers_at: dict[float, float] = {}
            """The usable points of one answer, by timestamp, until its labels are read."""

            def keep(point: Any) -> None:
                ts = parse_sfd_time(point.get("timestamp")) if isinstance(point, dict) else None
                viewers = point.get("concurrentViewers") if isinstance(point, dict) else None
                if ts is None or not is_count(viewers):
                    result.rejected_points += 1
                elif start <= ts <= min(end, closed_before):
                    viewers_at[ts] = viewers

            for started, ended in ranges:
                params = self.range_params(query, sfd_time(started), sfd_time(ended))
                headers = SignedAtSend(lambda params=params: self.headers(url, params))
                async with fetch.get("concurrent_viewers", url, params=params, headers=headers) as answer:
                    raise_unless_ok(answer, vendor_words, TRACE_HEADER)
                    viewers_at.clear()
                    body = await answer.json_with_list(("data",), keep)
                    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
                        raise InvalidBody("expected an object with a data list")
                    for ts, viewers in viewers_at.items():
                        found[ts] = TimedSample(ts, self.sample(body, query, viewers))
            return [found[ts] for ts in sorted(found)]

        return await history_units(self.active_units(), history_of)


def _requests_per_window(requests: int, interval: float, window: float) -> Fraction:
    return Fraction(requests) * Fraction(window) / Fraction(interval)


def plan_budget(
    sources: list[SourceSettings],
) -> tuple[dict[str, float], list[tuple[SourceSettings, str, str]]]:
    """Default intervals that fit each access key's budget, and the keys that cannot fit.

    Every source on one access key shares "100 per minute, 1000 per hour". Sources with an
    explicit `interval` take their share first; the others get one common default: 60 s, or
    longer when the rest of the budget needs it. Requests are counted over every unit, not only
    this shard's: replicas share the vendor's key.
    """
    groups: dict[str, list[LlsSettings]] = {}
    for source in sources:
        assert isinstance(source, LlsSettings)
        groups.setdefault(source.access_key_id, []).append(source)
    defaults: dict[str, float] = {}
    problems: list[tuple[SourceSettings, str, str]] = []
    for group in groups.values():
        requests = {source.name: len(Lls(source).units()) for source in group}
        explicit = {source.name: source.interval for source in group if source.interval}
        free_requests = sum(count for name, count in requests.items() if name not in explicit)
        free_interval = Fraction(DEFAULT_INTERVAL)
        for limit in Lls.rate_limits:
            spare = limit.requests - sum(
                _requests_per_window(requests[name], interval, limit.per_seconds) for name, interval in explicit.items()
            )
            if free_requests and spare > 0:
                need = Fraction(free_requests) * Fraction(limit.per_seconds) / spare
                free_interval = max(free_interval, Fraction(math.ceil(need)))
        intervals = {source.name: explicit.get(source.name) or float(free_interval) for source in group}
        defaults.update({name: interval for name, interval in intervals.items() if name not in explicit})
        problem = _over_budget(group, requests, intervals)
        if problem:
            blamed = next((source for source in group if source.name in explicit), group[0])
            problems.append((blamed, "interval", problem))
    return defaults, problems


def _requests(count: int) -> str:
    return f"{count} request{'' if count == 1 else 's'}"


def _over_budget(group: list[LlsSettings], requests: dict[str, int], intervals: dict[str, float]) -> str | None:
    """The first limit the group exceeds, as a message naming the sum and an interval that fits."""
    total = sum(requests.values())
    for limit in Lls.rate_limits:
        used = sum(_requests_per_window(requests[s.name], intervals[s.name], limit.per_seconds) for s in group)
        if used <= limit.requests:
            continue
        window = WINDOW_NAMES.get(limit.per_seconds, format_duration(limit.per_seconds))
        fits = max(math.ceil(Fraction(total) * Fraction(each.per_seconds) / each.requests) for each in Lls.rate_limits)
        polled = " + ".join(f"{_requests(requests[s.name])} every {format_duration(intervals[s.name])}" for s in group)
        shared = f" (sources {', '.join(s.name for s in group)} share this access_key_id)" if len(group) > 1 else ""
        every = "polling all of them every" if len(group) > 1 else "an interval of"
        return (
            f"{polled} make {math.ceil(used)} per {window}{shared}, over LLS's limit of "
            f"{limit.requests} per {window} per access key; {every} {format_duration(fits)} or longer fits"
        )
    return None
