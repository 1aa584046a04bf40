"""The plain data a poll hands back, and the seams a provider polls through.

A poll is split into *units*: the independent requests a source makes (one Gcore stream, one
LLS protocol, one Streams Charts stream). A unit that fails keeps its previous values until
`stale_after`; a unit that answers replaces its values wholesale, so a stream that leaves the
vendor's answer leaves /metrics with it.

These types are shared by providers, the fetcher, the scheduler and the metrics layer, so
they live here rather than under `providers/`: none of them knows a vendor or Prometheus.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

ALL_UNITS = "*"
"""A `PollResult.failures` key meaning the whole poll failed: every unit keeps its values."""
Labels = tuple[tuple[str, str], ...]


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


def without_frames(error: PollError) -> PollError:
    """`error` without its traceback and chained errors: a failure stays until the next poll, and
    the frames it was raised in hold the answer and its decoded JSON (32 units in flight failing
    on 5 MB answers kept ~900 MiB)."""
    error.__traceback__ = None
    error.__context__ = None
    error.__cause__ = None
    return error


@dataclass
class PollResult:
    """What one poll of one source produced.

    `samples` maps each unit that answered to its samples; `failures` maps each unit that
    did not to a one-line reason fit for a log (never a secret). `newest_timestamp` is the
    Unix time of the newest vendor data point published (freshness). `credits_spent` is what
    this poll's calls cost; `credits_remaining`, when not None, is what is left of the
    source's credit budget (the scheduler publishes both).
    """

    samples: dict[str, Sequence[Sample]] = field(default_factory=dict)
    failures: dict[str, PollError] = field(default_factory=dict)
    newest_timestamp: float | None = None
    rejected_points: int = 0
    credits_spent: float = 0.0
    credits_remaining: float | None = None

    @property
    def ok(self) -> bool:
        return not self.failures

    def fail(self, unit: str, error: PollError) -> None:
        """Record `unit` as failed with `error`, kept without the frames that hold its answer."""
        self.failures[unit] = without_frames(error)

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

    def json_items(self, what: str) -> AsyncIterator[Any]:
        """The items of a top-level JSON array, decoded in slices that give the event loop back
        (for answers of any size); raises InvalidBody when it is not a JSON list of `what`."""

    async def json_with_list(self, path: tuple[str, ...], consume: Callable[[Any], None]) -> Any:
        """The body as JSON, the items of the list at `path` handed to `consume` one at a time
        and that list left empty: a large answer never holds the list whole nor the event loop
        long; raises InvalidBody when it is not JSON."""

    @property
    def retry_after(self) -> float | None:
        """`Retry-After` in seconds (from seconds or an HTTP date), when present."""


@runtime_checkable
class SignedHeaders(Protocol):
    """Request headers signed for one send (a date and a nonce): a request sent again, after a
    429, takes `fresh()` ones rather than repeat a nonce."""

    def fresh(self) -> Mapping[str, str]: ...


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


def _every_unit(unit: str) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class ShardView:
    """The part of a source this replica polls, handed to a provider when it is built.

    `owns_unit` says whether a unit (a stream) is this replica's; `budget_share` is the part of
    a vendor account's credit budget it may spend (1/N of N shards).
    """

    owns_unit: Callable[[str], bool] = _every_unit
    budget_share: float = 1.0


WHOLE_SOURCE = ShardView()
"""An unsharded replica: every unit, the whole budget."""
