"""A credit ledger for vendors that charge per call with a 30-day first-call price (Streams Charts).

The vendor charges a higher price for the first call on a key (a channel and a metric set) and a
lower one for every further call within 30 days of it; on day 31 the first-call price applies
again. A budget caps what all calls of a source may cost within any 30 days (a sliding window):
`reserve` refuses a call that would exceed it, before the call is made.

Amounts are kept in hundredths of a credit (integers), so 0.2 + 0.2 + 0.2 is exactly 0.6 and a
budget is reached exactly, not one float rounding early or late. The ledger round-trips through
JSON (`export`/`restore`), so a restart neither forgets a first call (and charges it again) nor
forgets what the last 30 days cost.

A source following 10k streams books ~30M calls in 30 days, so calls are not kept one by one:
they are summed per `BUCKET_SECONDS` of booking time, and a bucket's whole sum counts until its
*latest* call is 30 days old. Each call is therefore counted at least as long as it really
counts, never shorter (the budget frees at most one bucket late, never early, so the ledger can
never allow overspending), and the ledger holds at most 30 days / BUCKET_SECONDS = 720 buckets.
Buckets and first calls expire lazily from the front of time-ordered queues, and a running sum
holds the spending, so `reserve` costs O(1) amortised however many calls were made.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

PERIOD_SECONDS = 30 * 86400.0
BUCKET_SECONDS = 3600.0


def hundredths(credits: float) -> int:
    return round(credits * 100)


def _is_time(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True, slots=True)
class Price:
    """What a call costs, in hundredths of a credit: the first in 30 days, and each next one."""

    first: int
    next: int


@dataclass(eq=False, slots=True)
class _Bucket:
    """The calls booked within one BUCKET_SECONDS; they count until `last_at` + 30 days."""

    index: int
    last_at: float
    cost: int = 0
    counted: bool = True


@dataclass(eq=False, slots=True)
class Charge:
    """One reserved call, kept by the caller so a call that got no answer can be given back."""

    key: str
    at: float
    cost: int
    opened_period: bool
    bucket: _Bucket
    refunded: bool = False


class CreditLedger:
    def __init__(self, budget: float | None = None) -> None:
        self.set_budget(budget)
        self.period_start: dict[str, float] = {}
        self._openings: deque[tuple[float, str]] = deque()
        """(period start, key) in booking order, to expire first calls without a scan."""
        self._buckets: deque[_Bucket] = deque()
        self._spent = 0

    def set_budget(self, budget: float | None) -> None:
        """Credits allowed per 30 days (None: no cap), rounded down to the hundredth."""
        self.budget = None if budget is None else math.floor(budget * 100 + 1e-9)

    def price(self, key: str, price: Price, now: float) -> int:
        start = self.period_start.get(key)
        return price.first if start is None or now >= start + PERIOD_SECONDS else price.next

    def _expire(self, now: float) -> None:
        buckets = self._buckets
        while buckets and now >= buckets[0].last_at + PERIOD_SECONDS:
            bucket = buckets.popleft()
            bucket.counted = False
            self._spent -= bucket.cost
        openings = self._openings
        while openings and now >= openings[0][0] + PERIOD_SECONDS:
            start, key = openings.popleft()
            if self.period_start.get(key) == start:
                del self.period_start[key]

    def spent(self, now: float) -> int:
        """Hundredths spent within the last 30 days (at most one bucket's age too long)."""
        self._expire(now)
        return self._spent

    def remaining(self, now: float) -> float | None:
        """Credits left of the budget in the last 30 days, or None without a budget."""
        if self.budget is None:
            return None
        return max(0, self.budget - self.spent(now)) / 100

    def reserve(self, key: str, price: Price, now: float) -> Charge | None:
        """Book one call on `key` now, or None when it would take spending past the budget."""
        self._expire(now)
        cost = self.price(key, price, now)
        if self.budget is not None and self._spent + cost > self.budget:
            return None
        start = self.period_start.get(key)
        opens = start is None or now >= start + PERIOD_SECONDS
        if opens:
            self.period_start[key] = now
            self._openings.append((now, key))
        bucket = self._bucket_at(now)
        bucket.cost += cost
        self._spent += cost
        return Charge(key, now, cost, opens, bucket)

    def _bucket_at(self, now: float) -> _Bucket:
        """The newest bucket, or a new one when `now` is past it. A call booked while the clock
        stands before the newest bucket joins that bucket: it then counts longer, never shorter."""
        index = math.floor(now / BUCKET_SECONDS)
        if self._buckets and self._buckets[-1].index >= index:
            newest = self._buckets[-1]
            newest.last_at = max(newest.last_at, now)
            return newest
        bucket = _Bucket(index, now)
        self._buckets.append(bucket)
        return bucket

    def refund(self, charge: Charge) -> None:
        """Take back a call the vendor did not answer (so it did not charge it either)."""
        if charge.refunded:
            return
        charge.refunded = True
        if charge.bucket.counted:
            charge.bucket.cost -= charge.cost
            self._spent -= charge.cost
        if charge.opened_period and self.period_start.get(charge.key) == charge.at:
            del self.period_start[charge.key]

    def affordable_at(self, cost: int, now: float) -> float | None:
        """When enough of today's charges have aged out for a call of `cost`; None if never."""
        if self.budget is None:
            return now
        if cost > self.budget:
            return None
        spent = self.spent(now)
        for bucket in self._buckets:
            if spent + cost <= self.budget:
                break
            spent -= bucket.cost
            now = bucket.last_at + PERIOD_SECONDS
        return now

    def export(self) -> dict[str, Any]:
        """First calls that still decide a price, and the spending per bucket that still counts."""
        return {
            "periods": dict(self.period_start),
            "spent": [[bucket.last_at, bucket.cost] for bucket in self._buckets if bucket.cost],
        }

    def restore(self, state: Any) -> None:
        """Take back an exported ledger; malformed entries are dropped rather than trusted.

        Also reads the per-call `charges` list older versions saved (folded into buckets)."""
        if not isinstance(state, dict):
            return
        periods = state.get("periods")
        if isinstance(periods, dict):
            self.period_start = {str(k): float(t) for k, t in periods.items() if _is_time(t)}
            self._openings = deque(sorted((start, key) for key, start in self.period_start.items()))
        spent = state.get("spent")
        if not isinstance(spent, list):
            charges = state.get("charges")
            spent = [c[1:] for c in charges if isinstance(c, list) and len(c) == 3] if isinstance(charges, list) else []
        self._buckets = deque()
        self._spent = 0
        for at, cost in sorted(
            (float(entry[0]), entry[1])
            for entry in spent
            if isinstance(entry, list)
            and len(entry) == 2
            and _is_time(entry[0])
            and isinstance(entry[1], int)
            and not isinstance(entry[1], bool)
            and entry[1] > 0
        ):
            bucket = self._bucket_at(at)
            bucket.cost += cost
            self._spent += cost
