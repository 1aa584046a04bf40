"""Driving an `AudienceStore` as the exporter does, from tests: polls go through `apply_sliced`
(the scheduler's path) and a body is the pieces a scrape writes out."""

from __future__ import annotations

import asyncio
from typing import Any

from exporter.metrics import AudienceStore, counter_json
from exporter.poll import PollResult


def apply(store: AudienceStore, source: str, result: PollResult, now: float) -> None:
    """One poll's result, applied to completion by the scheduler's sliced path (no loop running)."""
    asyncio.run(store.apply_sliced(source, result, now))


def audience_body(store: AudienceStore, openmetrics: bool) -> bytes:
    """The audience part of a scrape, as `Exposition` writes it."""
    return b"".join(store.pieces(openmetrics))


def counter_state(store: AudienceStore, source: str) -> dict[str, Any]:
    """The `counters` part of the source's state file, as `Persistence` writes it in slices."""
    return {"counters": [counter_json(entry) for entry in store.counter_entries(source)]}
