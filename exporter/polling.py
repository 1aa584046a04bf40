"""One poll of one source inside its failure boundary: whatever the provider or the answer
does, the caller gets a `PollOutcome` back, never an exception (cancellation aside).

A PollError is the vendor's failure; any other exception, raised while polling *or* while
applying the answer to the audience store, is a failed poll too (`internal error: ...`, its
traceback at debug level), so a source can never be left showing `up` with frozen data.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from exporter.failurelog import internal_error
from exporter.metrics import AudienceStore
from exporter.poll import ALL_UNITS, Answer, Fetcher, PollError, PollResult
from exporter.providers.base import Provider
from exporter.slices import LOOP_SHARE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollOutcome:
    result: PollResult
    answered: bool
    """Some request of the poll got a 2xx answer with a usable body: a failure then is partial
    (one stream), not the vendor being down, and keeps the normal schedule."""
    at: float
    """Unix time the result was applied (visible on /metrics)."""


class CountingFetch:
    """The fetcher a provider gets for one poll: the source's own, counting the good answers
    so the outcome can say whether the vendor answered at all, and sharing the turns of the event
    loop between the poll's units, and with everything else sliced by time (`LOOP_SHARE`), before
    each request and each answer."""

    def __init__(self, fetch: Fetcher) -> None:
        self.fetch = fetch
        self.answered = 0

    @asynccontextmanager
    async def get(
        self,
        endpoint: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Answer]:
        await LOOP_SHARE.wait()
        async with self.fetch.get(endpoint, url, params=params, headers=headers) as answer:
            await LOOP_SHARE.wait()
            yield answer
            if 200 <= answer.status < 300:
                self.answered += 1


async def poll_and_apply(provider: Provider, fetch: Fetcher, store: AudienceStore, source: str) -> PollOutcome:
    counting = CountingFetch(fetch)
    try:
        try:
            result = await provider.poll(counting, datetime.now(UTC))
        except PollError as error:
            result = PollResult()
            result.fail(ALL_UNITS, error)
        at = time.time()
        await store.apply_sliced(source, result, at)
        return PollOutcome(result, counting.answered > 0, at)
    except Exception as error:
        log.debug("poll raised", exc_info=True, extra={"source": source})
        failed = PollResult(failures={ALL_UNITS: internal_error(error)})
        at = time.time()
        await store.apply_sliced(source, failed, at)
        return PollOutcome(failed, False, at)
