"""When to try a failing source again: capped exponential backoff with jitter, and `Retry-After`.

A vendor that is down should not be hammered, and a vendor that is back should be seen soon.
After a failed poll in which no request got a good answer, the next try comes after `min(base, interval)` seconds,
doubling with each further failure up to `cap` (at most ten intervals or `max_cap`, never less
than one interval), each delay spread by ±`jitter` so that sources on one vendor do not retry
in step. Rejected credentials do not heal by retrying quickly: they go straight to the slowest
pace. A `Retry-After` from the vendor (429, 503) is a floor for the next try, honoured up to
`max_retry_after`. A failed poll in which some request got a good answer keeps the normal
schedule: the answering units need fresh data, and a retry would only repeat the failing ones.

    >>> policy = BackoffPolicy(jitter=0)
    >>> [policy.delay(60, failures) for failures in (1, 2, 3, 7, 8)]
    [5.0, 10.0, 20.0, 300.0, 300.0]
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from exporter.poll import PollResult


@dataclass(frozen=True)
class Retry:
    """The next try of a source after a failed poll, and what the log line should say about it."""

    delay: float
    why: str


@dataclass(frozen=True)
class BackoffPolicy:
    base: float = 5.0
    max_cap: float = 300.0
    cap_intervals: float = 10.0
    jitter: float = 0.2
    max_retry_after: float = 3600.0

    def cap(self, interval: float) -> float:
        """The slowest retry pace: ten intervals or five minutes, whichever is less, but never
        faster than the source's own interval."""
        return max(interval, min(self.max_cap, self.cap_intervals * interval))

    def delay(self, interval: float, failures: int, uniform: Callable[[float, float], float] = random.uniform) -> float:
        """Seconds before the next try after `failures` consecutive polls that got no good answer."""
        raw = min(self.base, interval) * 2 ** max(0, failures - 1)
        spread = uniform(1 - self.jitter, 1 + self.jitter) if self.jitter else 1.0
        return min(self.cap(interval), raw * spread)

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
            delay, why = self.cap(interval) * uniform(1, 1 + self.jitter), "credentials rejected"
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
