"""What the landing page and readiness read about one source: how its polls went and whether
it waits for a rate budget. Written by the scheduler after each poll, read by the web side.

    >>> status = SourceStatus("gcore-prod", "gcore", 60.0, clock=lambda: 1000.0)
    >>> status.state(), status.tried
    ('pending', False)
    >>> status.finished(ok=False, error="503: busy", at=1000.0, next_poll=1060.0)
    >>> status.waiting(90)
    >>> status.state(), status.tried
    ('down, rate limited', True)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class SourceStatus:
    name: str
    provider: str
    interval: float
    polls: int = 0
    """Polls that finished, good or failed."""
    up: bool = False
    last_success: float | None = None
    last_error: str | None = None
    next_poll: float | None = None
    rate_limited_until: float = 0.0
    """Wall-clock time until which the source waits for a `Retry-After` or its rate budget."""
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)

    @property
    def tried(self) -> bool:
        """Readiness asks only this: a vendor down at start must not keep the replica out of
        its Service, or nobody scrapes the `source_up` 0 that pages."""
        return self.polls > 0

    def finished(self, ok: bool, error: str | None, at: float, next_poll: float | None) -> None:
        """A poll ended at `at` and its answer is visible on /metrics."""
        self.polls += 1
        self.up = ok
        self.last_error = error
        self.next_poll = next_poll
        if ok:
            self.last_success = at

    def waiting(self, seconds: float) -> None:
        self.rate_limited_until = max(self.rate_limited_until, self.clock() + seconds)

    def is_rate_limited(self) -> bool:
        return self.clock() < self.rate_limited_until

    def state(self) -> str:
        state = "pending" if not self.tried else ("up" if self.up else "down")
        return f"{state}, rate limited" if self.is_rate_limited() else state
