"""What every vendor module implements, and the plain data it hands back.

A provider owns its vendor's wire format only: it builds requests (URL, query, auth headers)
and parses answers into `Sample`s. Timing, retries, rate limits, bookkeeping metrics and the
exposition belong to the scheduler and the metrics layer, so a provider never imports
prometheus_client and never sleeps.

A poll is split into *units*: the independent requests a source makes (one Gcore stream, one
LLS protocol, one Streams Charts stream). A unit that fails keeps its previous values until
`stale_after`; a unit that answers replaces its values wholesale, so a stream that leaves the
vendor's answer leaves /metrics with it.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

if TYPE_CHECKING:
    from exporter.history.points import HistoryResult
    from exporter.settings import SourceSettings

MetricKind = Literal["gauge", "counter"]
ALL_UNITS = "*"
"""A `PollResult.failures` key meaning the whole poll failed: every unit keeps its values."""
Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class MetricFamily:
    """A metric's exposition name, type and HELP text (counter names end in `_total`)."""

    name: str
    kind: MetricKind
    help: str


@dataclass(frozen=True, slots=True)
class Sample:
    """One value for one series, before `source`, `provider` and constant labels are added.

    For a counter family `value` is a vendor-side running total and `part` names what that
    total belongs to (a day for Cloudflare's day-wise totals, empty for a stream's lifetime
    total); the metrics layer sums the highest value seen per part, so the counter never
    goes down when the vendor revises a part or a part leaves the query window.
    """

    name: str
    labels: Labels
    value: float
    part: str = ""

    @staticmethod
    def of(name: str, value: float, part: str = "", **labels: str) -> Sample:
        return Sample(name, tuple(labels.items()), float(value), part)


@dataclass
class PollResult:
    """What one poll of one source produced.

    `samples` maps each unit that answered to its samples; `failures` maps each unit that
    did not to a one-line reason fit for a log (never a secret). `newest_timestamp` is the
    Unix time of the newest vendor data point published (freshness). `credits_spent` is what
    this poll's calls cost; `credits_remaining`, when not None, is what is left of the
    source's credit budget (the scheduler publishes both).
    """

    samples: dict[str, list[Sample]] = field(default_factory=dict)
    failures: dict[str, PollError] = field(default_factory=dict)
    newest_timestamp: float | None = None
    rejected_points: int = 0
    credits_spent: float = 0.0
    credits_remaining: float | None = None

    @property
    def ok(self) -> bool:
        return not self.failures

    def note_timestamp(self, ts: float | None) -> None:
        if ts is not None and (self.newest_timestamp is None or ts > self.newest_timestamp):
            self.newest_timestamp = ts


class PollError(Exception):
    """A failed request or unusable answer, with a reason fit for a log line.

    `status` is the HTTP status when there was one; `code` is the `requests_total` code for
    transport failures (`timeout`, `connect_error`, `invalid_body`); `retry_after` is the
    vendor's requested pause in seconds, when it gave one.
    """

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.code = code
        self.retry_after = retry_after

    @property
    def credentials_rejected(self) -> bool:
        return self.status in (401, 403)

    @property
    def rate_limited(self) -> bool:
        return self.status == 429


class InvalidBody(PollError):
    """The answer parsed as something other than the vendor's documented shape."""

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        super().__init__(reason, status=status, code="invalid_body")


class Answer(Protocol):
    """A vendor's HTTP answer as the fetcher hands it to a provider."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON; raises InvalidBody when it is not JSON."""

    @property
    def retry_after(self) -> float | None:
        """`Retry-After` in seconds (from seconds or an HTTP date), when present."""


class Fetcher(Protocol):
    """Sends one request for a provider; the scheduler's implementation owns the session,
    timeouts, rate limits and the `requests_total`/duration bookkeeping.

    Use as `async with fetch.get("viewers", url, params=..., headers=...) as answer:`; an
    `InvalidBody` raised inside the block is counted with code `invalid_body`.
    """

    def get(
        self,
        endpoint: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AbstractAsyncContextManager[Answer]: ...


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `requests` calls in any sliding window of `per_seconds`."""

    requests: int
    per_seconds: float


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
    """True for vendors that keep a time series `history` can ask for (README, "Gap-free history")."""

    def __init__(self, settings: SourceSettings) -> None:
        self.settings = settings
        self.owns_unit: Callable[[str], bool] = lambda unit: True
        self.budget_share = 1.0

    def set_budget_share(self, share: float) -> None:
        """The part of a vendor account's credit budget this replica may spend (1/N when the
        scheduler runs N shards): a provider with a budget spends at most budget x share."""
        self.budget_share = share

    def units(self) -> list[str]:
        """Every unit (independent request, usually one stream) a full poll covers.

        Sharding hands each replica a subset through `owns_unit`; `poll` must cover exactly
        `active_units()`.
        """
        return ["total"]

    def active_units(self) -> list[str]:
        """The units this replica polls."""
        return [unit for unit in self.units() if self.owns_unit(unit)]

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

    def requests_per_poll(self) -> int:
        """How many vendor calls one poll makes, for budget checks."""
        return len(self.active_units())

    def export_state(self) -> dict[str, Any] | None:
        """What this provider must remember across restarts (a credit ledger), as JSON data."""
        return None

    def restore_state(self, state: dict[str, Any] | None) -> None:
        """Take back what `export_state` saved before the restart."""
        return None


def error_body(answer: Answer) -> Any:
    """A failed answer's JSON, or None when it is not JSON (an HTML error page from a proxy):
    an error body is only read for the vendor's words, so an unreadable one is not a second error."""
    try:
        return answer.json()
    except PollError:
        return None


def is_number(value: Any) -> bool:
    """JSON numbers only: `true` is not a viewer count."""
    return isinstance(value, int | float) and not isinstance(value, bool)


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
    newest: tuple[float, float] | None = None
    for point in points:
        ts = timestamp(point) if isinstance(point, dict) else None
        value = point.get(value_key) if isinstance(point, dict) else None
        if ts is None or not is_number(value):
            result.rejected_points += 1
            continue
        if newest is None or ts > newest[0]:
            newest = (ts, float(value))
    if newest is not None:
        result.note_timestamp(newest[0])
    return newest


UNITS_IN_FLIGHT = 32
"""Units polled at once: enough to keep a connection pool busy, few enough that starting or
finishing them never holds the event loop long (10k requests started at once stall it for
seconds)."""


async def poll_units(
    units: Iterable[str],
    poll_unit: Callable[[str, PollResult], Awaitable[list[Sample]]],
) -> PollResult:
    """Poll independent units concurrently, at most UNITS_IN_FLIGHT at a time; one unit's
    failure never hides the others' data."""
    result = PollResult()
    keys = list(units)
    queue = iter(keys)

    async def worker() -> None:
        for key in queue:
            try:
                result.samples[key] = await poll_unit(key, result)
            except PollError as error:
                result.failures[key] = error

    await asyncio.gather(*(worker() for _ in range(min(UNITS_IN_FLIGHT, len(keys)))))
    return result
