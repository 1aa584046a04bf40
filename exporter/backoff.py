"""When to try a failing source again: a little slower than its schedule, never later than two
intervals, and `Retry-After`.

A vendor that is down should not get more calls than its normal schedule, and a vendor that is
back should be seen soon, however long it was down: after a failed poll in which no request got a
good answer the next try comes after one interval, then two (each spread by up to `jitter` inside
that range, so sources on one vendor do not retry in step). So the source is back within two
intervals of the vendor healing, and an outage halves its calls. Only two things slow it further:
rejected credentials, which do not heal by retrying (ten intervals or five minutes, whichever is
less, never less than one interval), and a vendor's `Retry-After` (429, 503), a floor honoured up
to `MAX_RETRY_AFTER`. A failed poll in which some request got a good answer keeps the normal
schedule: the answering units need fresh data, and a retry would only repeat the failing ones.

    >>> policy = BackoffPolicy(jitter=0)
    >>> [policy.delay(60, failures) for failures in (1, 2, 3, 100)]
    [60.0, 120.0, 120.0, 120.0]
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from exporter.poll import PollResult

MAX_RETRY_AFTER = 3600.0
"""The longest vendor `Retry-After` honoured, wherever it is (backoff, the shared limiter): one
hour. A longer one (7200, 999999999, a year-9999 date) would silence every source on the key."""


@dataclass(frozen=True)
class Retry:
    """The next try of a source after a failed poll, and what the log line should say about it."""

    delay: float
    why: str


@dataclass(frozen=True)
class BackoffPolicy:
    max_intervals: float = 2.0
    """The slowest retry pace after plain failures, in intervals: the bound on seeing a healed vendor."""
    credentials_cap: float = 300.0
    credentials_intervals: float = 10.0
    jitter: float = 0.2
    max_retry_after: float = MAX_RETRY_AFTER

    def credentials_pace(self, interval: float) -> float:
        """The retry pace while credentials are rejected: ten intervals or five minutes, whichever
        is less, but never faster than the source's own interval."""
        return max(interval, min(self.credentials_cap, self.credentials_intervals * interval))

    def delay(self, interval: float, failures: int, uniform: Callable[[float, float], float] = random.uniform) -> float:
        """Seconds before the next try after `failures` consecutive polls that got no good answer:
        one interval, then doubling up to `max_intervals`, spread by `jitter` within those bounds."""
        factor = min(self.max_intervals, 2.0 ** max(0, failures - 1))
        low = max(1.0, factor * (1 - self.jitter))
        high = min(self.max_intervals, factor * (1 + self.jitter))
        return interval * (uniform(low, high) if high > low else factor)

    def next_try(
        self,
        interval: float,
        result: PollResult,
        failures: int,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> Retry | None:
        """When to poll again after `result`, or None to keep the normal schedule.

        `failures` counts the consecutive failed polls (this one included) in which no request got
        a good answer; 0 means part of this poll was answered.
        """
        if result.ok:
            return None
        errors = list(result.failures.values())
        retry_after = max((e.retry_after for e in errors if e.retry_after is not None), default=None)
        if any(error.credentials_rejected for error in errors):
            delay, why = self.credentials_pace(interval) * uniform(1, 1 + self.jitter), "credentials rejected"
        elif failures > 0:
            delay, why = (
                self.delay(interval, failures, uniform),
                f"backoff after {failures} failed poll{'s' if failures != 1 else ''}",
            )
        else:
            delay, why = interval, "partial failure"
        if retry_after is not None:
            asked = min(retry_after, self.max_retry_after)
            if asked >= delay:
                delay, why = asked, "Retry-After"
        if why == "partial failure":
            return None
        return Retry(delay, why)


DEFAULT_POLICY = BackoffPolicy()
