"""A configured source as this replica runs it, and how it is built from the config: its
provider (with this shard's units and budget share), its interval, and the rate limiter it
shares with every other source on the same vendor credential."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from exporter.backoff import Retry
from exporter.bookkeeping import SourceBookkeeping
from exporter.config import Config
from exporter.failurelog import FailureLog
from exporter.fetch import SourceFetcher
from exporter.metrics import SourceIdentity
from exporter.poll import WHOLE_SOURCE, PollResult, ShardView
from exporter.providers import providers
from exporter.providers.base import Provider
from exporter.ratelimit import SlidingWindowLimiter
from exporter.selfmetrics import ExporterMetrics
from exporter.settings import SourceSettings
from exporter.sharding import Shard
from exporter.status import SourceStatus

log = logging.getLogger(__name__)

DEFAULT_RATE_LIMIT_PAUSE = 60.0
"""How long a 429 without `Retry-After` pauses its credential: the shortest window vendors state
their limits in."""


@dataclass
class SourceRuntime:
    """One source on this replica: what polls it, what records it, and where its retries stand."""

    provider: Provider
    identity: SourceIdentity
    settings: SourceSettings
    status: SourceStatus
    books: SourceBookkeeping
    failure_log: FailureLog
    fetcher: SourceFetcher | None = None
    failures: int = 0
    """Consecutive failed polls in which no request got a good answer (the backoff grows with it)."""
    retry: Retry | None = None
    task: asyncio.Task[bool] | None = field(default=None, repr=False)
    retired: bool = False

    @property
    def name(self) -> str:
        return self.identity.name

    @property
    def interval(self) -> float:
        return self.status.interval


def shared_defaults(config: Config) -> dict[str, float]:
    """Default intervals that depend on a vendor's other sources (a shared rate budget)."""
    return {
        name: seconds
        for provider_name, provider_class in providers().items()
        for name, seconds in provider_class.default_intervals(
            [source for source in config.sources if source.provider == provider_name]
        ).items()
    }


class SourceFactory:
    """Builds runtimes for one shard, and keeps the limiters shared per vendor credential."""

    def __init__(self, shard: Shard, metrics: ExporterMetrics, redact: Callable[[str], str]) -> None:
        self.shard = shard
        self.metrics = metrics
        self.redact = redact
        self.limiters: dict[tuple[str, str], SlidingWindowLimiter] = {}

    def build(self, settings: SourceSettings, config: Config, defaults: dict[str, float]) -> SourceRuntime | None:
        """The source's runtime, or None when every unit of it belongs to another shard."""
        view = ShardView(self.shard.unit_filter(settings.name), self.shard.budget_share)
        provider = providers()[settings.provider](settings, view if self.shard.sharded else WHOLE_SOURCE)
        if not provider.active_units():
            return None
        interval = settings.interval or defaults.get(settings.name) or provider.default_interval()
        identity = SourceIdentity(settings.name, settings.provider, tuple(settings.labels.items()))
        if interval >= config.global_.stale_after:
            log.warning(
                "interval is not shorter than global.stale_after: the source's series vanish between polls",
                extra={"source": settings.name, "interval": interval, "stale_after": config.global_.stale_after},
            )
        status = SourceStatus(settings.name, settings.provider, interval)
        books = SourceBookkeeping(self.metrics, status)
        return SourceRuntime(
            provider, identity, settings, status, books, FailureLog(settings.name, settings.provider, self.redact)
        )

    def limiter(self, provider: Provider) -> SlidingWindowLimiter | None:
        """The limiter of the provider's credential (this shard's part of its budget)."""
        key = provider.rate_limit_key()
        if key is None or not provider.rate_limits:
            return None
        return self.limiters.setdefault(
            (provider.name, key), SlidingWindowLimiter(self.shard.split(provider.rate_limits))
        )

    def pause_credential(self, provider: Provider, result: PollResult) -> float | None:
        """A 429 pauses every source on the same credential: for the vendor's Retry-After (the
        limiter caps it), or a minute when it gave none (or an unreadable one). Returns the
        seconds until the credential takes a request again, or None when nothing was paused."""
        pauses = [
            error.retry_after if error.retry_after is not None else DEFAULT_RATE_LIMIT_PAUSE
            for error in result.failures.values()
            if error.rate_limited
        ]
        limiter = self.limiter(provider)
        if not pauses or limiter is None:
            return None
        limiter.pause(max(pauses))
        return limiter.delay()

    def keep_limiters(self, runtimes: list[SourceRuntime]) -> None:
        """Forget the limiters no source uses any more."""
        used = {(r.provider.name, r.provider.rate_limit_key()) for r in runtimes}
        self.limiters = {key: limiter for key, limiter in self.limiters.items() if key in used}
