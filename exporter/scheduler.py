"""When to poll, and the bookkeeping around every poll.

One APScheduler job per source on the asyncio loop: the first poll runs at start, then every
`interval` (or the vendor's granularity) with a little jitter. `max_instances=1` means a slow
source is never polled twice at once, while different sources poll concurrently. The scheduler,
not the provider, records `source_up`, request counts, durations and last success, and owns the
one aiohttp ClientSession and the rate limiters shared per vendor credential.

After a failed poll the next one is moved by the backoff policy (exporter.backoff): sooner or
later than the interval, never earlier than the vendor's `Retry-After`. Sources are added,
restarted and removed at runtime when the config is reloaded; a source whose settings did not
change keeps its runtime, its counters and its schedule.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from exporter import __version__
from exporter.backoff import DEFAULT_POLICY, BackoffPolicy, Retry
from exporter.config import Config, ConfigError
from exporter.fetch import RequestTally, SourceFetcher
from exporter.landing import AudienceHistory
from exporter.metrics import AudienceStore, ExporterMetrics, SourceIdentity
from exporter.poll import ALL_UNITS, WHOLE_SOURCE, PollError, PollResult, ShardView
from exporter.providers import providers
from exporter.providers.base import Provider
from exporter.ratelimit import SlidingWindowLimiter
from exporter.settings import SourceSettings
from exporter.sharding import Shard, ShardError, resolve
from exporter.state import StateFiles

log = logging.getLogger(__name__)

USER_AGENT = f"livestream-exporter/{__version__}"
DEFAULT_RATE_LIMIT_PAUSE = 60.0


@dataclass
class SourceRuntime:
    """One configured source and what the landing page shows about it."""

    provider: Provider
    identity: SourceIdentity
    interval: float
    metrics: ExporterMetrics
    settings: SourceSettings | None = None
    fetcher: SourceFetcher | None = None
    polls: int = 0
    last_error: str | None = None
    last_success: float | None = None
    next_poll: float | None = None
    up: bool = False
    failures: int = 0
    """Consecutive failed polls in which no request got a good answer (the backoff grows with it)."""
    retry: Retry | None = None
    rate_limited_until: float = 0.0
    """Wall-clock time until which the source waits for a `Retry-After` or its rate budget."""
    logged_failure: frozenset[str] | None = None
    task: asyncio.Task[bool] | None = field(default=None, repr=False)
    retired: bool = False

    @property
    def name(self) -> str:
        return self.identity.name

    def request_done(self, endpoint: str, code: str, seconds: float) -> None:
        labels = (self.name, self.identity.provider)
        self.metrics.requests.labels(*labels, endpoint, code).inc()
        self.metrics.request_duration.labels(*labels).observe(seconds)

    def rate_limited(self) -> None:
        self.metrics.rate_limited.labels(self.name, self.identity.provider).inc()

    def waiting(self, seconds: float) -> None:
        self.rate_limited_until = max(self.rate_limited_until, time.time() + seconds)

    def is_rate_limited(self) -> bool:
        """True while the source waits for a vendor's `Retry-After` or its own rate budget."""
        return time.time() < self.rate_limited_until


def jitter_for(interval: float) -> float:
    """Up to 5 % of the interval (at most 5 s) so sources sharing an interval do not align."""
    return min(interval * 0.05, 5.0)


def failure_kind(error: PollError) -> str:
    """What kind of failure this is, for saying it once: the code or HTTP status, not the text
    (which may carry a request id that changes every time)."""
    return error.code or (str(error.status) if error.status is not None else "error")


def describe_failures(failures: dict[str, PollError]) -> str:
    """One line for a failed poll: each distinct reason once, with up to three of its units."""
    by_reason: dict[str, list[str]] = {}
    for unit, error in sorted(failures.items()):
        reason = f"credentials rejected: {error.reason}" if error.credentials_rejected else error.reason
        by_reason.setdefault(reason, []).append(unit)
    parts = []
    for reason, units in by_reason.items():
        named = [unit for unit in units if unit != ALL_UNITS]
        if not named:
            parts.append(reason)
            continue
        more = f" and {len(named) - 3} more" if len(named) > 3 else ""
        parts.append(f"{', '.join(named[:3])}{more}: {reason}")
    return "; ".join(parts)


def internal_error(error: Exception) -> PollError:
    """A bug or an answer our code cannot take, as a failed poll: a short reason for the one log
    line (the traceback is logged at debug level)."""
    text = str(error).splitlines()[0][:200] if str(error) else ""
    return PollError(f"internal error: {type(error).__name__}{': ' + text if text else ''}")


@dataclass
class ReloadSummary:
    added: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


class Scheduler:
    def __init__(
        self,
        config: Config,
        store: AudienceStore,
        metrics: ExporterMetrics,
        redact: Callable[[str], str] = str,
        backoff: BackoffPolicy = DEFAULT_POLICY,
    ) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self.redact = redact
        self.backoff = backoff
        self.state = StateFiles(config.global_.state_dir)
        self.sources: dict[str, SourceRuntime] = {}
        self.history = AudienceHistory()
        self.session: aiohttp.ClientSession | None = None
        self._limiters: dict[tuple[str, str], SlidingWindowLimiter] = {}
        self._aps: AsyncIOScheduler | None = None
        self._closing = False
        self.shard: Shard = resolve(config.global_.shard, config.global_.total_shards)
        self.other_shards: list[str] = []
        shared_defaults = self._shared_defaults(config)
        for settings in config.sources:
            runtime = self._runtime(settings, shared_defaults)
            if runtime is None:
                self.other_shards.append(settings.name)
            else:
                self.sources[settings.name] = runtime

    @staticmethod
    def _shared_defaults(config: Config) -> dict[str, float]:
        """Default intervals that depend on a vendor's other sources (a shared rate budget)."""
        return {
            name: seconds
            for provider_name, provider_class in providers().items()
            for name, seconds in provider_class.default_intervals(
                [source for source in config.sources if source.provider == provider_name]
            ).items()
        }

    def _runtime(self, settings: SourceSettings, shared_defaults: dict[str, float]) -> SourceRuntime | None:
        """The source's runtime, or None when every unit of it belongs to another shard."""
        view = ShardView(self.shard.unit_filter(settings.name), self.shard.budget_share)
        provider = providers()[settings.provider](settings, view if self.shard.sharded else WHOLE_SOURCE)
        if not provider.active_units():
            return None
        interval = settings.interval or shared_defaults.get(settings.name) or provider.default_interval()
        identity = SourceIdentity(settings.name, settings.provider, tuple(settings.labels.items()))
        if interval >= self.config.global_.stale_after:
            log.warning(
                "interval is not shorter than global.stale_after: the source's series vanish between polls",
                extra={"source": settings.name, "interval": interval, "stale_after": self.config.global_.stale_after},
            )
        return SourceRuntime(provider, identity, interval, self.metrics, settings)

    def _limiter(self, provider: Provider) -> SlidingWindowLimiter | None:
        key = provider.rate_limit_key()
        if key is None or not provider.rate_limits:
            return None
        return self._limiters.setdefault(
            (provider.name, key), SlidingWindowLimiter(self.shard.split(provider.rate_limits))
        )

    async def open(self) -> None:
        """Create the shared session and register every source's bookkeeping at 0."""
        self.session = aiohttp.ClientSession(
            headers={"User-Agent": USER_AGENT},
            timeout=aiohttp.ClientTimeout(total=self.config.global_.timeout),
        )
        for runtime in self.sources.values():
            self._open_source(runtime)
        self._note_shard()

    def _note_shard(self) -> None:
        self.metrics.shard_ordinal.set(self.shard.ordinal)
        self.metrics.total_shards.set(self.shard.total)
        if self.shard.sharded:
            log.info(
                "sharded",
                extra={
                    "shard": self.shard.ordinal,
                    "total_shards": self.shard.total,
                    "units": sum(len(r.provider.active_units()) for r in self.sources.values()),
                    "sources_on_other_shards": ",".join(self.other_shards) or "none",
                },
            )

    def _open_source(self, runtime: SourceRuntime) -> None:
        assert self.session is not None, "open() first"
        runtime.fetcher = SourceFetcher(
            self.session,
            self.config.global_.timeout,
            runtime,
            self._limiter(runtime.provider),
            source=runtime.name,
            max_wait=runtime.interval,
            max_body=self.config.global_.max_response_bytes,
        )
        saved = self.state.load(runtime.name)
        self.store.add_source(runtime.identity, saved)
        runtime.provider.restore_state(saved.get("provider"))
        self.metrics.add_source(runtime.name, runtime.identity.provider, runtime.interval, runtime.is_rate_limited)
        if runtime.provider.spends_credits:
            self.metrics.credits_spent.labels(runtime.name, runtime.identity.provider)
        self._note_units(runtime)

    def start(self, paused: bool = False) -> None:
        """Schedule every source; the first poll of each runs now (`paused`: none runs until
        resumed, for tests that drive polls by hand and read the schedule)."""
        self._aps = AsyncIOScheduler(timezone=UTC)
        self._aps.add_listener(self._count_skipped, EVENT_JOB_MAX_INSTANCES)
        for runtime in self.sources.values():
            self._schedule(runtime)
        self._aps.start(paused=paused)

    def _count_skipped(self, event: JobSubmissionEvent) -> None:
        """A poll came due while the previous one still ran (`max_instances=1`), so none ran."""
        runtime = self.sources.get(event.job_id)
        if runtime is not None:
            self.metrics.polls_skipped.labels(runtime.name, runtime.identity.provider).inc()
            log.debug("poll skipped: the previous one still runs", extra={"source": runtime.name})

    def _schedule(self, runtime: SourceRuntime) -> None:
        assert self._aps is not None
        self._aps.add_job(
            self.poll,
            "interval",
            args=[runtime.name],
            id=runtime.name,
            seconds=runtime.interval,
            jitter=jitter_for(runtime.interval),
            next_run_time=datetime.now(UTC) + timedelta(seconds=random.uniform(0, 0.25)),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )

    async def close(self) -> None:
        """Stop polling: in-flight polls are cancelled (their requests with them), then the
        session's connections are closed and the state files still queued are written."""
        self._closing = True
        await self._cancel_polls(list(self.sources.values()))
        if self._aps is not None and self._aps.running:
            self._aps.shutdown(wait=False)
        if self.session is not None:
            await self.session.close()
        await asyncio.to_thread(self.state.close)

    async def _cancel_polls(self, runtimes: list[SourceRuntime]) -> None:
        tasks = [r.task for r in runtimes if r.task is not None and r.task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def reload(self, config: Config) -> ReloadSummary:
        """Switch to a new, already validated config. A source whose settings are equal keeps
        its runtime (state, counters, schedule); a changed one is removed and added afresh (its
        audience counters continue from the state file); global settings apply to all. A new
        shard or shard count restarts every source with its new share of units and budgets; one
        this host cannot take (`auto` without an ordinal in range) refuses the whole reload."""
        try:
            shard = resolve(config.global_.shard, config.global_.total_shards)
        except ShardError as error:
            raise ConfigError([str(error)]) from None
        resharded = shard != self.shard
        summary = ReloadSummary()
        wanted = {settings.name: settings for settings in config.sources}
        for name, runtime in list(self.sources.items()):
            if name not in wanted:
                summary.removed.append(name)
            elif resharded or runtime.settings != wanted[name]:
                summary.restarted.append(name)
            else:
                summary.unchanged.append(name)
                continue
            await self._retire(runtime)
        self.config = config
        if resharded:
            self.shard = shard
            self._limiters = {}
        self.store.stale_after = config.global_.stale_after
        if config.global_.state_dir != str(self.state.directory):
            await asyncio.to_thread(self.state.close)
            self.state = StateFiles(config.global_.state_dir)
        kept = self.sources
        self.sources = {}
        shared_defaults = self._shared_defaults(config)
        self.other_shards = []
        for name, settings in wanted.items():
            runtime = kept.get(name)
            if runtime is None:
                runtime = self._runtime(settings, shared_defaults)
                if runtime is None:
                    self.other_shards.append(name)
                    continue
                if name not in summary.restarted:
                    summary.added.append(name)
                self.sources[name] = runtime
                self._open_source(runtime)
                if self._aps is not None:
                    self._schedule(runtime)
            else:
                self.sources[name] = runtime
                if runtime.fetcher is not None:
                    runtime.fetcher.timeout = aiohttp.ClientTimeout(total=config.global_.timeout)
                    runtime.fetcher.max_body = config.global_.max_response_bytes
        used = {(r.provider.name, r.provider.rate_limit_key()) for r in self.sources.values()}
        self._limiters = {key: limiter for key, limiter in self._limiters.items() if key in used}
        if resharded:
            self._note_shard()
        return summary

    async def _retire(self, runtime: SourceRuntime) -> None:
        runtime.retired = True
        if self._aps is not None and self._aps.get_job(runtime.name) is not None:
            self._aps.remove_job(runtime.name)
        await self._cancel_polls([runtime])
        self.store.remove_source(runtime.name)
        self.metrics.remove_source(runtime.name, runtime.identity.provider)
        del self.sources[runtime.name]

    async def poll_all_once(self) -> bool:
        """Poll every source once, concurrently; True when all succeeded."""
        results = await asyncio.gather(*(self.poll(name) for name in self.sources))
        return all(results)

    async def poll(self, name: str) -> bool:
        runtime = self.sources.get(name)
        if runtime is None or runtime.retired or self._closing:
            return False
        assert runtime.fetcher is not None, "open() first"
        labels = (runtime.name, runtime.identity.provider)
        runtime.task = asyncio.current_task()  # type: ignore[assignment]
        try:
            result, tally, now = await self._poll_and_apply(runtime)
        except asyncio.CancelledError:
            if self._closing or runtime.retired:
                return False
            raise
        except Exception as error:
            log.debug("poll raised", exc_info=True, extra={"source": name})
            result, tally, now = PollResult(failures={ALL_UNITS: internal_error(error)}), RequestTally(), time.time()
            await self.store.apply_sliced(name, result, now)
        finally:
            runtime.task = None
        self.history.record(name, result, now)
        self._pause_if_rate_limited(runtime, result)
        if result.rejected_points:
            self.metrics.rejected_points.labels(*labels).inc(result.rejected_points)
        if result.credits_spent:
            self.metrics.credits_spent.labels(*labels).inc(result.credits_spent)
        if result.credits_remaining is not None:
            self.metrics.credits_remaining.labels(*labels).set(result.credits_remaining)
        if result.newest_timestamp is not None:
            self.metrics.newest_sample.labels(*labels).set(result.newest_timestamp)
        self.metrics.source_up.labels(*labels).set(1 if result.ok else 0)
        self._note_units(runtime)
        runtime.up = result.ok
        runtime.failures = runtime.failures + 1 if not result.ok and tally.answered == 0 else 0
        retry = self._plan_retry(runtime, result)
        if result.ok:
            if runtime.last_error is not None:
                log.info("source recovered", extra={"source": name, "provider": runtime.identity.provider})
            runtime.last_error = None
            runtime.logged_failure = None
            runtime.last_success = now
            self.metrics.last_success.labels(*labels).set(now)
        else:
            self._report_failures(runtime, result, retry)
        self._save_state(runtime)
        self._note_next_poll(runtime)
        runtime.polls += 1
        return result.ok

    async def _poll_and_apply(self, runtime: SourceRuntime) -> tuple[PollResult, RequestTally, float]:
        """The failure boundary's inside: a PollError is the vendor's failure, anything else
        (raised by the provider or while applying its answer) propagates to `poll`."""
        assert runtime.fetcher is not None, "open() first"
        fetch = runtime.fetcher.for_poll()
        try:
            result = await runtime.provider.poll(fetch, datetime.now(UTC))
        except PollError as error:
            result = PollResult(failures={ALL_UNITS: error})
        now = time.time()
        await self.store.apply_sliced(runtime.name, result, now)
        return result, fetch.tally, now

    def _pause_if_rate_limited(self, runtime: SourceRuntime, result: PollResult) -> None:
        """A 429 pauses every source on the same credential: for the vendor's Retry-After, or
        a minute when it gave none (the shortest window vendors state their limits in)."""
        pauses = [
            error.retry_after if error.retry_after is not None else DEFAULT_RATE_LIMIT_PAUSE
            for error in result.failures.values()
            if error.rate_limited
        ]
        limiter = self._limiter(runtime.provider)
        if pauses and limiter is not None:
            limiter.pause(max(pauses))

    def _plan_retry(self, runtime: SourceRuntime, result: PollResult) -> Retry | None:
        """Move the next poll as the backoff policy says; None keeps the normal schedule."""
        retry = self.backoff.next_try(runtime.interval, result, runtime.failures)
        runtime.retry = retry
        if retry is not None and retry.why == "Retry-After":
            runtime.waiting(retry.delay)
        job = self._aps.get_job(runtime.name) if self._aps is not None else None
        if job is not None and retry is not None:
            job.modify(next_run_time=datetime.now(UTC) + timedelta(seconds=retry.delay))
        return retry

    def _report_failures(self, runtime: SourceRuntime, result: PollResult, retry: Retry | None) -> None:
        """One line per failed poll, at warning level the first time this kind of failure is
        seen (until the source recovers), at debug level after that."""
        reason = self.redact(describe_failures(result.failures))
        runtime.last_error = reason
        kinds = frozenset(failure_kind(error) for error in result.failures.values())
        credentials = any(error.credentials_rejected for error in result.failures.values())
        extra = {
            "source": runtime.name,
            "provider": runtime.identity.provider,
            "reason": reason,
        }
        if self._aps is not None:  # a next poll is planned (not so with --once)
            extra.update(
                retry_in=f"{retry.delay if retry else runtime.interval:.1f}s",
                retry_why=retry.why if retry else "interval",
            )
        if kinds != runtime.logged_failure:
            runtime.logged_failure = kinds
            log.warning("credentials rejected" if credentials else "poll failed", extra=extra)
        else:
            log.debug("poll failed again", extra=extra)

    def _save_state(self, runtime: SourceRuntime) -> None:
        counters = self.store.counter_state(runtime.name)
        provider_state = runtime.provider.export_state()
        if counters["counters"] or provider_state:
            self.state.save(runtime.name, {**counters, "provider": provider_state})

    def _note_units(self, runtime: SourceRuntime) -> None:
        """How many units of the source this replica polls (a provider's units may change)."""
        count = len(runtime.provider.active_units())
        self.metrics.owned_units.labels(runtime.name, runtime.identity.provider).set(count)

    def _note_next_poll(self, runtime: SourceRuntime) -> None:
        job = self._aps.get_job(runtime.name) if self._aps is not None else None
        runtime.next_poll = job.next_run_time.timestamp() if job and job.next_run_time else None

    def ready(self) -> bool:
        return all(runtime.polls > 0 for runtime in self.sources.values())
