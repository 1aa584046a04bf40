"""Driving an `AudienceStore` as the exporter does, from tests: polls go through `apply_sliced`
(the scheduler's path) and a body is the pieces a scrape writes out."""

from __future__ import annotations

import asyncio

from exporter.metrics import AudienceStore
from exporter.poll import PollResult


def apply(store: AudienceStore, source: str, result: PollResult, now: float) -> None:
    """One poll's result, applied to completion by the scheduler's sliced path (no loop running)."""
    asyncio.run(store.apply_sliced(source, result, now))


def audience_body(store: AudienceStore, openmetrics: bool) -> bytes:
    """The audience part of a scrape, as `Exposition` writes it."""
    return b"".join(store.pieces(openmetrics))
