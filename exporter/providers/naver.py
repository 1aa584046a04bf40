"""NAVER Cloud Video Player Enhancement, Media Analytics: player-measured current viewers.

Follows provider-docs/naver-vpe-current-viewers.md (`GET /v1/charts/currentViewers`, headers
`x-api-key` and `x-project-id`, query `device` and `videoType`) and naver-vpe-notes.md (failures
answered with HTTP 200 and `{"error": {"errorCode", "message"}}`; `logDate` carries no zone).
The answer holds an hour of one-minute points, newest first; the point with the newest
`logDate` is published, whatever the order, with the requested filters as labels:

    livestream_concurrent_viewers{device="PC,Mobile",video_type="VOD,LIVE"} 1520
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator

from exporter.families import CONCURRENT_VIEWERS
from exporter.history.points import HistoryResult, TimedSample, history_units
from exporter.poll import WHOLE_SOURCE, Fetcher, InvalidBody, PollError, PollResult, Sample, ShardView
from exporter.providers import register
from exporter.providers.base import NewestPoint, Provider, is_count, poll_units, raise_unless_ok
from exporter.settings import NonEmpty, Secret, SourceSettings, one_of

log = logging.getLogger(__name__)

PATH = "/v1/charts/currentViewers"
LOG_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
POINT_KEYS = {"currentViewerCnt", "logDate"}
DEFAULT_INTERVAL = 60.0
FUTURE_TOLERANCE = 300.0
"""A newest point this far ahead of our clock is more than skew: `timezone` is likely wrong."""
MAX_AGE = 3600.0
"""The answer covers the last hour; a newest point older than that points at `timezone` too."""


def _iana_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA time zone name such as Asia/Seoul or UTC") from None
    return value


class NaverSettings(SourceSettings):
    min_interval = 10.0
    """Points are a minute apart and no rate limit is documented."""

    api_key: Secret
    project_id: NonEmpty
    device: one_of("PC,Mobile", "PC", "Mobile") = "PC,Mobile"  # type: ignore[valid-type]
    video_type: one_of("VOD,LIVE", "VOD", "LIVE") = "VOD,LIVE"  # type: ignore[valid-type]
    timezone: Annotated[str, AfterValidator(_iana_zone)] = "Asia/Seoul"


def log_date_to_unix(value: Any, zone: ZoneInfo) -> float | None:
    """`2025-10-09 16:23:00` read as wall-clock time in `zone`, to Unix time; None if malformed."""
    if not isinstance(value, str):
        return None
    try:
        local = datetime.strptime(value, LOG_DATE_FORMAT)
    except ValueError:
        return None
    if local.strftime(LOG_DATE_FORMAT) != value:
        return None
    return local.replace(tzinfo=zone).timestamp()


def _vendor_error(body: Any) -> str | None:
    """`errorCode: message` from an `{"error": {...}}` body, which NAVER sends even with HTTP 200."""
    error = body.get("error") if isinstance(body, dict) else None
    if error is None:
        return None
    if isinstance(error, dict):
        return f"{error.get('errorCode', 'error')}: {error.get('message') or 'no message'}"
    return f"error: {error}"


def vendor_words(body: Any) -> str | None:
    reason = _vendor_error(body)
    if reason:
        return reason
    if isinstance(body, dict) and "code" in body:
        return f"code {body['code']}: {body.get('message') or 'no message'}"
    return None


@register
class Naver(Provider):
    name = "naver"
    settings_model = NaverSettings
    default_base_url = "https://ma-dashboard-api.vpe.naverncp.com"
    families = (CONCURRENT_VIEWERS,)
    history_supported = True
    settings: NaverSettings

    def __init__(self, settings: NaverSettings, shard: ShardView = WHOLE_SOURCE) -> None:
        super().__init__(settings, shard)
        self.zone = ZoneInfo(self.settings.timezone)
        self._warned_about_zone = False

    def default_interval(self) -> float:
        """Points are one minute apart."""
        return DEFAULT_INTERVAL

    def params(self) -> dict[str, str]:
        return {"device": self.settings.device, "videoType": self.settings.video_type}

    def headers(self) -> dict[str, str]:
        return {"x-api-key": self.settings.api_key.get_secret_value(), "x-project-id": self.settings.project_id}

    async def poll(self, fetch: Fetcher, now: datetime) -> PollResult:
        url = f"{self.base_url}{PATH}"
        headers = self.headers()

        async def poll_chart(unit: str, result: PollResult) -> list[Sample]:
            async with fetch.get("current_viewers", url, params=self.params(), headers=headers) as answer:
                raise_unless_ok(answer, vendor_words)
                newest = self.newest_point()
                body = await answer.json_with_list(("result",), newest.add)
                return self.parse(body, now.timestamp(), result, newest)

        return await poll_units(self.active_units(), poll_chart)

    def newest_point(self) -> NewestPoint:
        return NewestPoint(lambda point: log_date_to_unix(point.get("logDate"), self.zone), "currentViewerCnt")

    def parse(self, body: Any, now: float, result: PollResult, handed_over: NewestPoint | None = None) -> list[Sample]:
        """The point with the newest `logDate` becomes the sample; `handed_over` holds the
        `result` points already read while decoding (`Answer.json_with_list`), counted only once
        the body is known to be a success."""
        points = handed_over or self.newest_point()
        for point in self.points(body):
            points.add(point)
        newest = points.finish(result)
        if newest is None:
            return []
        self._check_zone(newest[0], now)
        return [self.sample(newest[1])]

    def sample(self, viewers: float) -> Sample:
        return CONCURRENT_VIEWERS.sample(viewers, device=self.settings.device, video_type=self.settings.video_type)

    async def history(self, fetch: Fetcher, start: float, end: float) -> HistoryResult:
        """The points of the one hour NAVER keeps whose `logDate` lies in `start`..`end`; a start
        older than that hour is clipped (`kept_since`), which is no failure."""
        kept_since = time.time() - MAX_AGE

        async def history_of(unit: str, result: HistoryResult) -> list[TimedSample]:
            async with fetch.get(
                "current_viewers", f"{self.base_url}{PATH}", params=self.params(), headers=self.headers()
            ) as answer:
                raise_unless_ok(answer, vendor_words)
                found: dict[float, TimedSample] = {}
                rejected = 0

                def keep(point: Any) -> None:
                    nonlocal rejected
                    ts = log_date_to_unix(point.get("logDate"), self.zone) if isinstance(point, dict) else None
                    viewers = point.get("currentViewerCnt") if isinstance(point, dict) else None
                    if ts is None or not is_count(viewers):
                        rejected += 1
                    elif start <= ts <= end:
                        found[ts] = TimedSample(ts, self.sample(viewers))

                for point in self.points(await answer.json_with_list(("result",), keep)):
                    keep(point)
                result.rejected_points += rejected
                return [found[ts] for ts in sorted(found)]

        result = await history_units(self.active_units(), history_of)
        if start < kept_since:
            result.kept_since = kept_since
        return result

    def points(self, body: Any) -> list[Any]:
        """The `result` points. Only a body with a `result` and no `error` is a success (NAVER
        answers most failures with HTTP 200).

        The page's table types `result` as one object (`result.currentViewerCnt`) while its
        example answers a list of points, and types `code` as a string while the example sends
        the number 200: each shape is read, an object with a point's keys as a list of one point
        (an empty object is no point but a drifted answer)."""
        if not isinstance(body, dict):
            raise InvalidBody("expected a JSON object")
        reason = _vendor_error(body)
        if reason:
            raise PollError(reason, status=200)
        code, points = body.get("code"), body.get("result")
        message = body.get("message") or "no message"
        if code is not None and str(code) != "200":
            raise PollError(f"code {code}: {message}", status=200)
        if isinstance(points, dict) and POINT_KEYS & points.keys():
            points = [points]
        if not isinstance(points, list):
            raise InvalidBody(f"code {code}: {message} (no result list or object)", status=200)
        return points

    def _check_zone(self, newest: float, now: float) -> None:
        """Warn once (until it is plausible again) when the newest point, read in `timezone`,
        is in the future or hours old: the usual sign of a wrong zone."""
        implausible = newest - now > FUTURE_TOLERANCE or now - newest > MAX_AGE
        if implausible and not self._warned_about_zone:
            log.warning(
                "newest logDate read in the configured timezone is %s; check the `timezone` key",
                "in the future" if newest > now else "over an hour old",
                extra={
                    "source": self.settings.name,
                    "timezone": self.settings.timezone,
                    "newest_point": datetime.fromtimestamp(newest, UTC).isoformat(),
                },
            )
        self._warned_about_zone = implausible
