"""What every vendor module implements, and the plain data it hands back.

A provider owns its vendor's wire format only: it builds requests (URL, query, auth headers)
and parses answers into `Sample`s. Timing, retries, rate limits, bookkeeping metrics and the
exposition belong to the scheduler and the metrics layer, so a provider never imports
prometheus_client and never sleeps.

The data it hands back (`Sample`, `PollResult`, `PollError`) lives in `exporter.poll`.
"""

from __future__ import annotations

import asyncio
import math
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from exporter.families import MetricFamily
from exporter.poll import WHOLE_SOURCE, Answer, Fetcher, PollError, PollResult, RateLimit, Sample, ShardView

if TYPE_CHECKING:
    from exporter.history.points import HistoryResult
    from exporter.settings import SourceSettings


class Provider(ABC):
    """One vendor. Subclasses register with `@register` in `exporter.providers`."""

    name: ClassVar[str]
    settings_model: ClassVar[type[SourceSettings]]
    default_base_url: ClassVar[str]
    families: ClassVar[tuple[MetricFamily, ...]] = ()
    rate_limits: ClassVar[tuple[RateLimit, ...]] = ()
    spends_credits: ClassVar[bool] = False
    """True for vendors that charge per call: `credits_spent_total` then starts at 0."""
    history_supported: ClassVar[bool] = False
    """True for vendors that keep a time series `history` can ask for (docs/history.md)."""

    def __init__(self, settings: SourceSettings, shard: ShardView = WHOLE_SOURCE) -> None:
        self.settings = settings
        self.shard = shard
        self._active_units: list[str] | None = None

    def units(self) -> list[str]:
        """Every unit (independent request, usually one stream) a full poll covers.

        Sharding hands each replica a subset through `shard.owns_unit`; `poll` must cover
        exactly `active_units()`.
        """
        return ["total"]

    def active_units(self) -> list[str]:
        """The units this replica polls. Worked out once: a provider's settings and shard never
        change (a reload builds a new one), and asking each of 10k units its shard took 10 ms of
        the event loop at every poll. Callers must not change the list."""
        if self._active_units is None:
            self._active_units = [unit for unit in self.units() if self.shard.owns_unit(unit)]
        return self._active_units

    @classmethod
    def check_sources(cls, sources: list[SourceSettings]) -> list[tuple[SourceSettings, str, str]]:
        """Rules across this vendor's sources (a shared rate budget): (source, key, message) each."""
        return []

    @classmethod
    def default_intervals(cls, sources: list[SourceSettings]) -> dict[str, float]:
        """Default intervals that depend on this vendor's other sources (a shared rate budget),
        by source name; a source left out, or one with its own `interval`, is not affected."""
        return {}

    @property
    def base_url(self) -> str:
        return (self.settings.base_url or self.default_base_url).rstrip("/")

    @abstractmethod
    def default_interval(self) -> float:
        """Seconds between polls when the source sets no `interval`: the vendor's granularity."""

    @abstractmethod
    async def poll(self, fetch: Fetcher, now: datetime) -> PollResult:
        """Ask the vendor for the newest data and turn the answers into samples."""

    async def history(self, fetch: Fetcher, start: float, end: float) -> HistoryResult:
        """The samples the live exporter would have published between `start` and `end` (Unix
        seconds, `end` not after now), each at the time it would first have been published,
        built with the live poll's own requests and parsing. Only when `history_supported`."""
        raise NotImplementedError(f"{self.name} keeps no history")

    def rate_limit_key(self) -> str | None:
        """Sources whose key is equal share one rate budget (one vendor credential)."""
        return None

    def export_state(self) -> dict[str, Any] | None:
        """What this provider must remember across restarts (a credit ledger), as JSON data."""
        return None

    def restore_state(self, state: dict[str, Any] | None) -> None:
        """Take back what `export_state` saved before the restart."""
        return None


T = TypeVar("T")

VendorWords = Callable[[Any], str | None]
"""A vendor's reading of its own error body (JSON, never None): its words for the failure, or
None when the body holds none."""


def _error_body(answer: Answer) -> Any:
    """A failed answer's JSON, or None when it is not JSON (an HTML error page from a proxy):
    an error body is only read for the vendor's words, so an unreadable one is not a second error."""
    try:
        return answer.json()
    except PollError:
        return None


def failure_reason(answer: Answer, vendor_words: VendorWords, trace_header: str | None = None) -> str:
    """One log line for a failed answer: the vendor's words when its body has any, else the HTTP
    status, then the request's trace id from `trace_header` when the vendor sent one (to quote
    to its support)."""
    body = _error_body(answer)
    reason = vendor_words(body) if body is not None else None
    if not reason:
        reason = "rate limit exceeded" if answer.status == 429 else f"HTTP {answer.status}"
    trace_id = answer.headers.get(trace_header) if trace_header else None
    return f"{reason} ({trace_header} {trace_id})" if trace_id else reason


def raise_unless_ok(answer: Answer, vendor_words: VendorWords, trace_header: str | None = None) -> None:
    """Every vendor answers data with HTTP 200 only: anything else is a failed unit, carrying
    its status (credentials, rate limits) and `Retry-After` to the scheduler."""
    if answer.status != 200:
        raise PollError(
            failure_reason(answer, vendor_words, trace_header), status=answer.status, retry_after=answer.retry_after
        )


def is_count(value: Any) -> bool:
    """A viewer count: a JSON number (`true` is none), finite and not negative. Python's decoder
    also takes `NaN`, `Infinity` and `1e400` (infinite), which no count can be."""
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < math.inf


def newest_point(
    points: Iterable[Any],
    timestamp: Callable[[dict[str, Any]], float | None],
    value_key: str,
    result: PollResult,
) -> tuple[float, float] | None:
    """The (timestamp, value) of the newest usable point of a vendor's series.

    A point whose timestamp or value cannot be used is counted in `result.rejected_points` and
    skipped: one malformed point never fails a poll and never becomes the newest.
    """
    newest = NewestPoint(timestamp, value_key)
    for point in points:
        newest.add(point)
    return newest.finish(result)


class NewestPoint:
    """`newest_point` one point at a time, for points handed over while an answer is decoded
    (`Answer.json_with_list`); nothing reaches the poll's result before `finish`, so an answer
    found to be a failure after its points were read counts none of them."""

    def __init__(self, timestamp: Callable[[dict[str, Any]], float | None], value_key: str) -> None:
        self.timestamp = timestamp
        self.value_key = value_key
        self.newest: tuple[float, float] | None = None
        self.rejected = 0

    def add(self, point: Any) -> None:
        ts = self.timestamp(point) if isinstance(point, dict) else None
        value = point.get(self.value_key) if isinstance(point, dict) else None
        if ts is None or not is_count(value):
            self.rejected += 1
            return
        if self.newest is None or ts > self.newest[0]:
            self.newest = (ts, float(value))

    def finish(self, result: PollResult) -> tuple[float, float] | None:
        result.rejected_points += self.rejected
        if self.newest is not None:
            result.note_timestamp(self.newest[0])
        return self.newest


UNITS_IN_FLIGHT = 32
"""Units polled at once: enough to keep a connection pool busy, few enough that starting or
finishing them never holds the event loop long (10k requests started at once stall it for
seconds)."""


class UnitResults(Protocol[T]):
    """What a poll or a history request fills per unit: its samples, or why it has none."""

    samples: dict[str, list[T]]
    failures: dict[str, PollError]

    def fail(self, unit: str, error: PollError) -> None: ...


Results = TypeVar("Results", bound=UnitResults[Any])


async def gather_units(
    units: Iterable[str],
    work: Callable[[str, Results], Awaitable[Sequence[Any]]],
    result: Results,
    in_flight: int,
) -> Results:
    """Run independent units concurrently, at most `in_flight` at a time, into `result`; one
    unit's failure never hides the others' data."""
    keys = list(units)
    queue = iter(keys)

    async def worker() -> None:
        for key in queue:
            try:
                result.samples[key] = await work(key, result)
            except PollError as error:
                result.fail(key, error)

    await asyncio.gather(*(worker() for _ in range(min(in_flight, len(keys)))))
    return result


async def poll_units(
    units: Iterable[str],
    poll_unit: Callable[[str, PollResult], Awaitable[Sequence[Sample]]],
) -> PollResult:
    """Poll independent units, at most UNITS_IN_FLIGHT at a time."""
    return await gather_units(units, poll_unit, PollResult(), UNITS_IN_FLIGHT)
