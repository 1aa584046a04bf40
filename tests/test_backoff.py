"""Backoff policy: capped exponential growth with jitter, Retry-After as a floor, slow pace for
rejected credentials, and the normal schedule when part of a poll answered."""

from __future__ import annotations

import pytest

from exporter.backoff import BackoffPolicy
from exporter.poll import ALL_UNITS, PollError, PollResult, Sample

EXACT = BackoffPolicy(jitter=0)


def failed(*errors: PollError) -> PollResult:
    return PollResult(failures={f"u{i}": error for i, error in enumerate(errors)})


def test_delay_doubles_from_base_up_to_the_cap() -> None:
    assert [EXACT.delay(60, n) for n in range(1, 9)] == [5, 10, 20, 40, 80, 160, 300, 300]


def test_short_intervals_start_at_the_interval_and_cap_at_ten_intervals() -> None:
    assert [EXACT.delay(1, n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_cap_is_never_faster_than_the_source_interval() -> None:
    assert EXACT.cap(900) == 900
    assert EXACT.delay(900, 20) == 900


@pytest.mark.parametrize("draw", [0.8, 1.2])
def test_jitter_spreads_each_delay_by_at_most_a_fifth(draw: float) -> None:
    policy = BackoffPolicy(jitter=0.2)
    assert policy.delay(60, 2, uniform=lambda low, high: draw) == pytest.approx(10 * draw)
    assert policy.delay(60, 9, uniform=lambda low, high: 1.2) == 300


def test_jitter_draws_from_the_documented_range() -> None:
    seen: list[tuple[float, float]] = []
    BackoffPolicy(jitter=0.2).delay(60, 1, uniform=lambda low, high: seen.append((low, high)) or low)
    assert seen == [(0.8, 1.2)]


def test_success_keeps_the_normal_schedule() -> None:
    assert EXACT.next_try(60, PollResult(samples={"a": []}), failures=0) is None


def test_total_failure_backs_off_by_the_failure_count() -> None:
    retry = EXACT.next_try(60, failed(PollError("down", status=500)), failures=3)
    assert retry is not None and (retry.delay, retry.why) == (20, "backoff after 3 failed polls")


def test_retry_after_is_a_floor_for_the_next_try() -> None:
    retry = EXACT.next_try(60, failed(PollError("slow down", status=429, retry_after=120)), failures=1)
    assert retry is not None and (retry.delay, retry.why) == (120, "Retry-After")


def test_retry_after_shorter_than_the_backoff_does_not_shorten_it() -> None:
    retry = EXACT.next_try(60, failed(PollError("slow down", status=429, retry_after=1)), failures=4)
    assert retry is not None and retry.delay == 40


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
    assert retry is not None and retry.delay == 10
