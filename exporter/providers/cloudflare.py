"""Cloudflare RealtimeKit day-wise livestream analytics: sessions, ingest and viewer seconds.

Follows provider-docs/cloudflare-realtimekit-livestream-daywise.md
(`GET /accounts/{account_id}/realtime/kit/{app_id}/analytics/livestreams/daywise`) and
cloudflare-notes.md (Bearer token, `success: false` bodies, 1200 requests per 5 minutes).

The vendor answers one running total per day. Each day becomes one *part* of a counter (the
metrics layer keeps the highest value seen per day and publishes their sum), so today's total
grows during the day, a new day starts at its own value, and neither a downward revision nor a
day leaving the query window makes the counter go down:

    livestream_sessions_total{source="cf",provider="cloudflare"} 4
    livestream_ingest_seconds_total{source="cf",provider="cloudflare"} 531
    livestream_viewer_seconds_total{source="cf",provider="cloudflare"} 116

Days are taken to be UTC days (the vendor does not say); each poll asks from midnight UTC of
yesterday, so late revisions of yesterday still count, or from the last day a poll covered
before a restart (at most `MAX_CATCH_UP_DAYS` back), so days missed while down are added.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote

from exporter.families import INGEST_SECONDS, SESSIONS, VIEWER_SECONDS
from exporter.poll import (
    WHOLE_SOURCE,
    Answer,
    Fetcher,
    InvalidBody,
    PollError,
    PollResult,
    RateLimit,
    Sample,
    ShardView,
)
from exporter.providers import register
from exporter.providers.base import Provider, failure_reason, raise_unless_ok
from exporter.settings import PathSegment, Secret, SourceSettings

DEFAULT_INTERVAL = 300.0
MAX_CATCH_UP_DAYS = 31
UNIT = "daywise"
COUNTERS = {
    "count": SESSIONS,
    "total_ingest_seconds": INGEST_SECONDS,
    "total_viewer_seconds": VIEWER_SECONDS,
}
_DATE_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}")


class CloudflareSettings(SourceSettings):
    min_interval = 60.0
    """Day-wise totals; at 60s even 20 sources on one token use a fifth of its 1200 calls per
    5 minutes."""

    api_token: Secret
    account_id: PathSegment
    app_id: PathSegment
    filters: str | None = None


def vendor_words(body: Any) -> str | None:
    """`code: message` of each entry of a v4 `errors` list."""
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list) or not errors:
        return None
    parts = []
    for error in errors:
        if isinstance(error, dict) and error.get("message"):
            code = error.get("code")
            parts.append(f"{code}: {error['message']}" if code is not None else str(error["message"]))
        else:
            parts.append(str(error))
    return "; ".join(parts)


def entry_day(entry: dict[str, Any]) -> date | None:
    """The entry's `date` as a day (`2023-07-15`, or an ISO timestamp's date part)."""
    value = entry.get("date")
    if not isinstance(value, str) or not _DATE_PREFIX.match(value):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _total(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


class DayTotals:
    """The counter parts of an answer's entries, one entry at a time.

    An entry without a usable `date` is skipped and counted as rejected: a total that belongs to
    no known day cannot be told apart from the same total on the next poll. Nothing reaches the
    poll's result before `samples`, so an answer found to be a failure after its entries were
    read counts none of them.
    """

    def __init__(self) -> None:
        self.parts: list[Sample] = []
        self.newest: date | None = None
        self.rejected = 0

    def add(self, entry: Any) -> None:
        day = entry_day(entry) if isinstance(entry, dict) else None
        if day is None:
            self.rejected += 1
            return
        usable = True
        for field, family in COUNTERS.items():
            if entry.get(field) is None:
                continue
            value = _total(entry[field])
            if value is None:
                usable = False
                continue
            self.parts.append(family.sample(value, part=day.isoformat()))
        if not usable:
            self.rejected += 1
        if self.newest is None or day > self.newest:
            self.newest = day

    def samples(self, now: datetime, result: PollResult) -> list[Sample]:
        """The parts, and today's (0 while the vendor has no entry for it yet), so the counters
        exist, and keep their value, even while the window holds no sessions."""
        today = now.astimezone(UTC).date()
        samples = list(self.parts)
        present = {sample.name for sample in samples if sample.part == today.isoformat()}
        samples.extend(
            family.sample(0.0, part=today.isoformat()) for family in COUNTERS.values() if family.name not in present
        )
        result.rejected_points += self.rejected
        if self.newest is not None:
            result.note_timestamp(min(now.timestamp(), day_start(self.newest + timedelta(days=1)).timestamp()))
        return samples


@register
class Cloudflare(Provider):
    name = "cloudflare"
    settings_model = CloudflareSettings
    default_base_url = "https://api.cloudflare.com/client/v4"
    families = tuple(COUNTERS.values())
    rate_limits = (RateLimit(1200, 300.0),)
    settings: CloudflareSettings

    def __init__(self, settings: CloudflareSettings, shard: ShardView = WHOLE_SOURCE) -> None:
        super().__init__(settings, shard)
        self.covered_day: date | None = None

    def default_interval(self) -> float:
        """Day-wise totals move slowly; one call per 5 minutes is 60 of the token's 1200 per 5 minutes
        even for 20 sources sharing one token."""
        return DEFAULT_INTERVAL

    def units(self) -> list[str]:
        return [UNIT]

    def rate_limit_key(self) -> str:
        """Cloudflare counts requests per token; a digest keeps the token itself out of the key."""
        return hashlib.sha256(self.settings.api_token.get_secret_value().encode()).hexdigest()[:16]

    def first_day(self, today: date) -> date:
        """Yesterday, or the day the last successful poll covered when that is older (catch-up)."""
        first = today - timedelta(days=1)
        if self.covered_day is not None and self.covered_day < first:
            first = max(self.covered_day, today - timedelta(days=MAX_CATCH_UP_DAYS))
        return first

    def params(self, now: datetime) -> dict[str, str]:
        params = {
            "start_time": str(int(day_start(self.first_day(now.astimezone(UTC).date())).timestamp())),
            "end_time": str(int(now.timestamp())),
        }
        if self.settings.filters:
            params["filters"] = self.settings.filters
        return params

    @property
    def url(self) -> str:
        account, app = quote(self.settings.account_id), quote(self.settings.app_id)
        return f"{self.base_url}/accounts/{account}/realtime/kit/{app}/analytics/livestreams/daywise"

    async def poll(self, fetch: Fetcher, now: datetime) -> PollResult:
        if not self.active_units():
            return PollResult()
        headers = {"Authorization": f"Bearer {self.settings.api_token.get_secret_value()}"}
        result = PollResult()
        try:
            async with fetch.get("livestreams_daywise", self.url, params=self.params(now), headers=headers) as answer:
                days = DayTotals()
                data = await self.data_of(answer, days.add)
                result.samples[UNIT] = self.parse(data, now, result, days)
        except PollError as error:
            result.fail(UNIT, error)
            return result
        self.covered_day = now.astimezone(UTC).date()
        return result

    @staticmethod
    async def data_of(answer: Answer, consume: Callable[[Any], None]) -> list[Any]:
        """The `data` list of a successful answer, its entries handed to `consume` while it is
        decoded (`Answer.json_with_list`); anything else is a failed poll."""
        raise_unless_ok(answer, vendor_words)
        body = await answer.json_with_list(("data",), consume)
        if not isinstance(body, dict):
            raise InvalidBody("expected a JSON object with `data` and `success`")
        if body.get("success") is False:
            raise PollError(failure_reason(answer, vendor_words), status=answer.status)
        data = body.get("data")
        if not isinstance(data, list):
            raise InvalidBody("answer has no `data` list")
        return data

    def parse(
        self, data: list[Any], now: datetime, result: PollResult, handed_over: DayTotals | None = None
    ) -> list[Sample]:
        """Each entry's totals as counter parts keyed by its date (see DayTotals); `handed_over`
        holds the entries already read while decoding."""
        days = handed_over or DayTotals()
        for entry in data:
            days.add(entry)
        return days.samples(now, result)

    def export_state(self) -> dict[str, Any] | None:
        return {"covered_day": self.covered_day.isoformat()} if self.covered_day else None

    def restore_state(self, state: dict[str, Any] | None) -> None:
        value = state.get("covered_day") if isinstance(state, dict) else None
        try:
            self.covered_day = date.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            self.covered_day = None
