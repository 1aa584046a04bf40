"""A credit ledger for vendors that charge per call with a 30-day first-call price (Streams Charts).

The vendor charges a higher price for the first call on a key (a channel and a metric set) and a
lower one for every further call within 30 days of it; on day 31 the first-call price applies
again. A budget caps what all calls of a source may cost within any 30 days (a sliding window):
`reserve` refuses a call that would exceed it, before the call is made.

Amounts are kept in hundredths of a credit (integers), so 0.2 + 0.2 + 0.2 is exactly 0.6 and a
budget is reached exactly, not one float rounding early or late. The ledger round-trips through
JSON (`export`/`restore`), so a restart neither forgets a first call (and charges it again) nor
forgets what the last 30 days cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

PERIOD_SECONDS = 30 * 86400.0


def hundredths(credits: float) -> int:
    return round(credits * 100)


@dataclass(frozen=True, slots=True)
class Price:
    """What a call costs, in hundredths of a credit: the first in 30 days, and each next one."""

    first: int
    next: int


@dataclass(eq=False, slots=True)
class Charge:
    """One reserved call, kept so a call that got no answer can be given back."""

    key: str
    at: float
    cost: int
    opened_period: bool
    previous_start: float | None


class CreditLedger:
    def __init__(self, budget: float | None = None) -> None:
        self.set_budget(budget)
        self.period_start: dict[str, float] = {}
        self.charges: list[Charge] = []

    def set_budget(self, budget: float | None) -> None:
        """Credits allowed per 30 days (None: no cap), rounded down to the hundredth."""
        self.budget = None if budget is None else math.floor(budget * 100 + 1e-9)

    def price(self, key: str, price: Price, now: float) -> int:
        start = self.period_start.get(key)
        return price.first if start is None or now >= start + PERIOD_SECONDS else price.next

    def _prune(self, now: float) -> None:
        self.charges = [c for c in self.charges if c.at > now - PERIOD_SECONDS]
        self.period_start = {k: t for k, t in self.period_start.items() if now < t + PERIOD_SECONDS}

    def spent(self, now: float) -> int:
        """Hundredths spent within the last 30 days."""
        self._prune(now)
        return sum(c.cost for c in self.charges)

    def remaining(self, now: float) -> float | None:
        """Credits left of the budget in the last 30 days, or None without a budget."""
        if self.budget is None:
            return None
        return max(0, self.budget - self.spent(now)) / 100

    def reserve(self, key: str, price: Price, now: float) -> Charge | None:
        """Book one call on `key` now, or None when it would take spending past the budget."""
        self._prune(now)
        cost = self.price(key, price, now)
        if self.budget is not None and self.spent(now) + cost > self.budget:
            return None
        opens = key not in self.period_start
        charge = Charge(key, now, cost, opens, self.period_start.get(key))
        if opens:
            self.period_start[key] = now
        self.charges.append(charge)
        return charge

    def refund(self, charge: Charge) -> None:
        """Take back a call the vendor did not answer (so it did not charge it either)."""
        if charge in self.charges:
            self.charges.remove(charge)
        if charge.opened_period and self.period_start.get(charge.key) == charge.at:
            del self.period_start[charge.key]

    def affordable_at(self, cost: int, now: float) -> float | None:
        """When enough of today's charges have aged out for a call of `cost`; None if never."""
        if self.budget is None:
            return now
        if cost > self.budget:
            return None
        spent = self.spent(now)
        for charge in sorted(self.charges, key=lambda c: c.at):
            if spent + cost <= self.budget:
                break
            spent -= charge.cost
            now = charge.at + PERIOD_SECONDS
        return now

    def export(self) -> dict[str, Any]:
        return {
            "periods": dict(self.period_start),
            "charges": [[c.key, c.at, c.cost] for c in self.charges],
        }

    def restore(self, state: Any) -> None:
        """Take back an exported ledger; malformed entries are dropped rather than trusted."""
        if not isinstance(state, dict):
            return
        periods = state.get("periods")
        if isinstance(periods, dict):
            self.period_start = {
                str(k): float(t) for k, t in periods.items() if isinstance(t, int | float) and not isinstance(t, bool)
            }
        charges = state.get("charges")
        if isinstance(charges, list):
            self.charges = [
                Charge(str(c[0]), float(c[1]), int(c[2]), False, None)
                for c in charges
                if isinstance(c, list) and len(c) == 3 and isinstance(c[1], int | float) and isinstance(c[2], int)
            ]
