"""A realistic live audience over time, shared by the simulators (it is data, not wire format).

A show repeats every `period` seconds: viewers ramp up, hold a noisy plateau, suddenly drop to
a fraction (an outage or a cut to ads), partly recover, and the show ends with a fall towards
zero. The value is a pure function of time, so every simulator can answer any time window.
"""

from __future__ import annotations

import math


def audience(ts: float, peak: float, period: float = 1800.0, phase: float = 0.0) -> float:
    position = ((ts + phase) % period) / period
    if position < 0.25:
        level = position / 0.25
    elif position < 0.6:
        level = 1.0
    elif position < 0.65:
        level = 0.3
    elif position < 0.9:
        level = 0.85
    else:
        level = 0.85 * (1.0 - (position - 0.9) / 0.1)
    wobble = 1.0 + 0.03 * math.sin(ts / 37.0 + phase) + 0.02 * math.sin(ts / 11.0)
    return max(0.0, peak * level * wobble)
