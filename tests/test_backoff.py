"""Backoff policy: one interval, then two (never faster than the schedule, never slower than two
intervals, however long the outage), Retry-After as a floor, a slow pace for rejected
credentials, and the normal schedule when part of a poll answered."""

from __future__ import annotations

import pytest

from exporter.backoff import BackoffPolicy
from exporter.poll import ALL_UNITS, PollError, PollResult, Sample

EXACT = BackoffPolicy(jitter=0)


def failed(*errors: PollError) -> PollResult:
    return PollResult(failures={f"u{i}": error for i, error in enumerate(errors)})


def test_the_first_retry_keeps_the_schedule_and_later_ones_wait_two_intervals() -> None:
    assert [EXACT.delay(60, n) for n in range(1, 6)] == [60, 120, 120, 120, 120]


@pytest.mark.parametrize("interval", [1, 2, 60, 3600])
@pytest.mark.parametrize("draw", ["low", "high"])
def test_any_outage_retries_between_one_and_two_intervals(interval: float, draw: str) -> None:
    """Vendor calls never exceed the normal schedule, and a healed vendor is seen within two
    intervals, whatever the length of the outage and the jitter's draw."""
    policy = BackoffPolicy(jitter=0.2)
    pick = (lambda low, high: low) if draw == "low" else (lambda low, high: high)
    for failures in range(1, 1000):
        assert interval <= policy.delay(interval, failures, uniform=pick) <= 2 * interval


def test_jitter_spreads_each_delay_inside_its_bounds() -> None:
    seen: list[tuple[float, float]] = []
    policy = BackoffPolicy(jitter=0.2)
    for failures in (1, 2, 9):
        policy.delay(60, failures, uniform=lambda low, high: seen.append((low, high)) or low)
    assert seen == [(1.0, 1.2), (1.6, 2.0), (1.6, 2.0)]


def test_the_credentials_pace_is_never_faster_than_the_source_interval() -> None:
    assert EXACT.credentials_pace(900) == 900
    assert EXACT.credentials_pace(60) == 300
    assert EXACT.credentials_pace(2) == 20


def test_success_keeps_the_normal_schedule() -> None:
    assert EXACT.next_try(60, PollResult(samples={"a": []}), failures=0) is None


def test_total_failure_backs_off_by_the_failure_count() -> None:
    retry = EXACT.next_try(60, failed(PollError("down", status=500)), failures=3)
    assert retry is not None and (retry.delay, retry.why) == (120, "backoff after 3 failed polls")


def test_retry_after_is_a_floor_for_the_next_try() -> None:
    retry = EXACT.next_try(60, failed(PollError("slow down", status=429, retry_after=150)), failures=1)
    assert retry is not None and (retry.delay, retry.why) == (150, "Retry-After")


def test_retry_after_shorter_than_the_backoff_does_not_shorten_it() -> None:
    retry = EXACT.next_try(60, failed(PollError("slow down", status=429, retry_after=1)), failures=4)
    assert retry is not None and retry.delay == 120


def test_absurd_retry_after_is_honoured_up_to_an_hour() -> None:
    retry = EXACT.next_try(60, failed(PollError("x", status=503, retry_after=10**9)), failures=1)
    assert retry is not None and retry.delay == 3600


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_credentials_go_straight_to_the_slow_pace(status: int) -> None:
    retry = EXACT.next_try(60, failed(PollError("no", status=status)), failures=1)
    assert retry is not None and (retry.delay, retry.why) == (300, "credentials rejected")


def test_partial_failure_keeps_the_normal_schedule() -> None:
    result = PollResult(
        samples={"a": [Sample.of("livestream_unique_viewers", 1)]}, failures={"b": PollError("x", status=500)}
    )
    assert EXACT.next_try(60, result, failures=0) is None


def test_partial_failure_still_honours_a_long_retry_after() -> None:
    result = PollResult(samples={"a": []}, failures={"b": PollError("x", status=429, retry_after=90)})
    retry = EXACT.next_try(60, result, failures=0)
    assert retry is not None and retry.delay == 90


def test_whole_poll_failure_uses_the_backoff() -> None:
    retry = EXACT.next_try(60, PollResult(failures={ALL_UNITS: PollError("x", code="timeout")}), failures=2)
    assert retry is not None and retry.delay == 120
