"""What a provider's `history` hands back: samples with the time the live exporter would have
first published them. Plain data, like PollResult: no Prometheus here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from exporter.poll import PollError, Sample, without_frames
from exporter.providers.base import gather_units

UNITS_IN_FLIGHT = 4
"""History requests of one source at once: history is never urgent, and the live poll shares
the connection pool and the rate budget."""


@dataclass(frozen=True, slots=True)
class TimedSample:
    timestamp: float
    """Unix seconds: a Gcore bucket's end, an LLS point's timestamp, a NAVER point's logDate."""
    sample: Sample


@dataclass
class HistoryResult:
    """What one history request of one source produced, per unit.

    `kept_since`, when set, is the oldest time the vendor still keeps (NAVER: one hour back),
    later than the start asked for: the range was clipped, which is no failure.
    """

    samples: dict[str, list[TimedSample]] = field(default_factory=dict)
    failures: dict[str, PollError] = field(default_factory=dict)
    kept_since: float | None = None
    rejected_points: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures

    def fail(self, unit: str, error: PollError) -> None:
        self.failures[unit] = without_frames(error)

    @property
    def sample_count(self) -> int:
        return sum(len(samples) for samples in self.samples.values())


async def history_units(
    units: Iterable[str],
    fetch_unit: Callable[[str, HistoryResult], Awaitable[list[TimedSample]]],
) -> HistoryResult:
    """Ask for each unit's history, UNITS_IN_FLIGHT at a time, as a poll asks for its units."""
    return await gather_units(units, fetch_unit, HistoryResult(), UNITS_IN_FLIGHT)
