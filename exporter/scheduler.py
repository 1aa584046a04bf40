"""When to poll, and the bookkeeping around every poll.

One APScheduler job per source on the asyncio loop: the first poll runs at start, then every
`interval` (or the vendor's granularity) with a little jitter. `max_instances=1` means a slow
source is never polled twice at once, while different sources poll concurrently. The scheduler,
not the provider, records `source_up`, request counts, durations and last success, and owns the
one aiohttp ClientSession and the rate limiters shared per vendor credential.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from exporter import __version__
from exporter.config import Config
from exporter.fetch import SourceFetcher
from exporter.metrics import AudienceStore, ExporterMetrics, SourceIdentity
from exporter.providers import providers
from exporter.providers.base import ALL_UNITS, PollError, PollResult, Provider
from exporter.ratelimit import SlidingWindowLimiter
from exporter.state import StateFiles

log = logging.getLogger(__name__)

USER_AGENT = f"livestream-exporter/{__version__}"


@dataclass
class SourceRuntime:
    """One configured source and what the landing page shows about it."""

    provider: Provider
    identity: SourceIdentity
    interval: float
    metrics: ExporterMetrics
    fetcher: SourceFetcher | None = None
    polls: int = 0
    last_error: str | None = None
    last_success: float | None = None
    next_poll: float | None = None
    up: bool = False
    logged_reasons: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.identity.name

    def request_done(self, endpoint: str, code: str, seconds: float) -> None:
        labels = (self.name, self.identity.provider)
        self.metrics.requests.labels(*labels, endpoint, code).inc()
        self.metrics.request_duration.labels(*labels).observe(seconds)

    def rate_limited(self) -> None:
        self.metrics.rate_limited.labels(self.name, self.identity.provider).inc()


def jitter_for(interval: float) -> float:
    """Up to 5 % of the interval (at most 5 s) so sources sharing an interval do not align."""
    return min(interval * 0.05, 5.0)


class Scheduler:
    def __init__(self, config: Config, store: AudienceStore, metrics: ExporterMetrics) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self.state = StateFiles(config.global_.state_dir)
        self.sources: dict[str, SourceRuntime] = {}
        self.session: aiohttp.ClientSession | None = None
        self._limiters: dict[tuple[str, str], SlidingWindowLimiter] = {}
        self._aps: AsyncIOScheduler | None = None
        known = providers()
        for settings in config.sources:
            provider = known[settings.provider](settings)
            interval = settings.interval or provider.default_interval()
            identity = SourceIdentity(settings.name, settings.provider, tuple(settings.labels.items()))
            self.sources[settings.name] = SourceRuntime(provider, identity, interval, metrics)

    def _limiter(self, provider: Provider) -> SlidingWindowLimiter | None:
        key = provider.rate_limit_key()
        if key is None or not provider.rate_limits:
            return None
        return self._limiters.setdefault((provider.name, key), SlidingWindowLimiter(provider.rate_limits))

    async def open(self) -> None:
        """Create the shared session and register every source's bookkeeping at 0."""
        self.session = aiohttp.ClientSession(
            headers={"User-Agent": USER_AGENT},
            timeout=aiohttp.ClientTimeout(total=self.config.global_.timeout),
        )
        for runtime in self.sources.values():
            runtime.fetcher = SourceFetcher(
                self.session, self.config.global_.timeout, runtime, self._limiter(runtime.provider)
            )
            saved = self.state.load(runtime.name)
            self.store.add_source(runtime.identity, saved)
            runtime.provider.restore_state(saved.get("provider"))
            self.metrics.add_source(runtime.name, runtime.identity.provider, runtime.interval)

    def start(self) -> None:
        """Schedule every source; the first poll of each runs now."""
        self._aps = AsyncIOScheduler(timezone=UTC)
        now = datetime.now(UTC)
        for runtime in self.sources.values():
            self._aps.add_job(
                self.poll,
                "interval",
                args=[runtime.name],
                id=runtime.name,
                seconds=runtime.interval,
                jitter=jitter_for(runtime.interval),
                next_run_time=now + timedelta(seconds=random.uniform(0, 0.25)),
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )
        self._aps.start()

    async def close(self) -> None:
        if self._aps is not None and self._aps.running:
            self._aps.shutdown(wait=False)
        if self.session is not None:
            await self.session.close()

    async def poll_all_once(self) -> bool:
        """Poll every source once, concurrently; True when all succeeded."""
        results = await asyncio.gather(*(self.poll(name) for name in self.sources))
        return all(results)

    async def poll(self, name: str) -> bool:
        runtime = self.sources[name]
        assert runtime.fetcher is not None, "open() first"
        labels = (runtime.name, runtime.identity.provider)
        try:
            result = await runtime.provider.poll(runtime.fetcher, datetime.now(UTC))
        except PollError as error:
            result = PollResult(failures={ALL_UNITS: error})
        except Exception as error:
            log.exception("provider failed unexpectedly", extra={"source": name})
            result = PollResult(failures={ALL_UNITS: PollError(f"internal error: {type(error).__name__}")})
        now = time.time()
        runtime.polls += 1
        await self.store.apply_sliced(name, result, now)
        if result.rejected_points:
            self.metrics.rejected_points.labels(*labels).inc(result.rejected_points)
        if result.credits_spent:
            self.metrics.credits_spent.labels(*labels).inc(result.credits_spent)
        if result.newest_timestamp is not None:
            self.metrics.newest_sample.labels(*labels).set(result.newest_timestamp)
        self.metrics.source_up.labels(*labels).set(1 if result.ok else 0)
        runtime.up = result.ok
        if result.ok:
            if runtime.last_error is not None:
                log.info("source recovered", extra={"source": name})
            runtime.last_error = None
            runtime.logged_reasons.clear()
            runtime.last_success = now
            self.metrics.last_success.labels(*labels).set(now)
        else:
            self._report_failures(runtime, result)
        self._save_state(runtime)
        self._note_next_poll(runtime)
        return result.ok

    def _report_failures(self, runtime: SourceRuntime, result: PollResult) -> None:
        """Log each distinct reason once until the source recovers."""
        reasons = []
        for unit, error in sorted(result.failures.items()):
            reason = error.reason if unit == ALL_UNITS else f"{unit}: {error.reason}"
            if error.credentials_rejected:
                reason = f"credentials rejected: {reason}"
            reasons.append(reason)
            if reason not in runtime.logged_reasons:
                runtime.logged_reasons.add(reason)
                log.warning(
                    "poll failed",
                    extra={"source": runtime.name, "provider": runtime.identity.provider, "reason": reason},
                )
        runtime.last_error = "; ".join(reasons)

    def _save_state(self, runtime: SourceRuntime) -> None:
        counters = self.store.counter_state(runtime.name)
        provider_state = runtime.provider.export_state()
        if counters["counters"] or provider_state:
            self.state.save(runtime.name, {**counters, "provider": provider_state})

    def _note_next_poll(self, runtime: SourceRuntime) -> None:
        job = self._aps.get_job(runtime.name) if self._aps is not None else None
        runtime.next_poll = job.next_run_time.timestamp() if job and job.next_run_time else None

    def ready(self) -> bool:
        return all(runtime.polls > 0 for runtime in self.sources.values())
