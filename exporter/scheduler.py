"""Runs the configured sources: builds them for this shard, polls each on its timetable, and
after every poll records the outcome, plans the retry and saves the state.

The rooms it joins, each with one job: `timetable` (when to poll), `polling` (one poll inside its
failure boundary), `backoff` (when to retry), `bookkeeping` (the exporter's own metrics, recorded
here, never by providers), `status` (what the landing page and readiness read), `failurelog`
(one line per kind of failure), `persistence` (the one writer of state files) and `sources`
(providers, intervals and the rate limiters shared per vendor credential). The scheduler owns the
one aiohttp ClientSession. Sources are added, restarted and removed at runtime when the config is
reloaded; a source whose settings did not change keeps its runtime, counters and schedule.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

from exporter import __version__
from exporter.backoff import DEFAULT_POLICY, BackoffPolicy, Retry
from exporter.config import Config, ConfigError
from exporter.fetch import LargeAnswerTurn, SourceFetcher
from exporter.history.filler import GapFiller
from exporter.landing import AudienceHistory
from exporter.metrics import AudienceStore
from exporter.persistence import Persistence, StateSnapshot
from exporter.poll import PollResult
from exporter.polling import PollOutcome, poll_and_apply
from exporter.selfmetrics import ExporterMetrics
from exporter.sharding import Shard, ShardError, resolve
from exporter.slices import release
from exporter.sources import SourceFactory, SourceRuntime, shared_defaults
from exporter.timetable import Timetable

log = logging.getLogger(__name__)

USER_AGENT = f"livestream-exporter/{__version__}"
UNITS_RELEASED_PER_TURN = 100
"""A poll's units freed between two hand-backs to the loop: a unit's answer is ten to fifty
Samples (1,000 Streams Charts units held the loop 16 ms)."""
CREDENTIAL_PAUSED = "429: credential paused"
"""The retry reason when a 429 paused the source's credential past the backoff's next try."""


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
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self.backoff = backoff
        self.persistence = Persistence(store, config.global_.state_dir)
        self.shard: Shard = resolve(config.global_.shard, config.global_.total_shards)
        self.factory = SourceFactory(self.shard, metrics, redact)
        self.gaps = GapFiller(
            config.global_.history, config.global_.state_dir, metrics.registry, self.factory.pause_credential
        )
        self.timetable = Timetable(self.poll, self._skipped, clock=clock, sleep=sleep)
        self.session: aiohttp.ClientSession | None = None
        self.large_answers = LargeAnswerTurn()
        self._closing = False
        self.sources: dict[str, SourceRuntime] = {}
        self.other_shards: list[str] = []
        self.trends = AudienceHistory()
        self._started = False
        self._ready = False
        defaults = shared_defaults(config)
        for settings in config.sources:
            runtime = self.factory.build(settings, config, defaults)
            if runtime is None:
                self.other_shards.append(settings.name)
            else:
                self.sources[settings.name] = runtime

    async def open(self) -> None:
        """Create the shared session, register every source's bookkeeping at 0 and put each on
        the timetable (nothing polls before `start`)."""
        self.session = aiohttp.ClientSession(
            headers={"User-Agent": USER_AGENT},
            timeout=aiohttp.ClientTimeout(total=self.config.global_.timeout),
        )
        for runtime in self.sources.values():
            self._open_source(runtime)
        note_shard(self.metrics, self.shard, list(self.sources.values()), self.other_shards)

    def _open_source(self, runtime: SourceRuntime) -> None:
        assert self.session is not None, "open() first"
        runtime.fetcher = SourceFetcher(
            self.session,
            self.config.global_.timeout,
            runtime.books,
            self.factory.limiter(runtime.provider),
            source=runtime.name,
            max_wait=runtime.interval,
            max_body=self.config.global_.max_response_bytes,
            large_answers=self.large_answers,
        )
        self.persistence.restore(runtime)
        runtime.books.opened(runtime.provider.spends_credits)
        runtime.books.units(len(runtime.provider.active_units()))
        self.timetable.add(runtime.name, runtime.interval)
        runtime.status.next_poll = self.timetable.due_at(runtime.name)

    def start(self, paused: bool = False) -> None:
        """Start polling; the first poll of each source runs now (`paused`: none runs, for
        tests that drive polls by hand and read the timetable)."""
        self._started = True
        if not paused:
            self.timetable.start()

    async def close(self) -> None:
        """Stop polling: in-flight polls are cancelled (their requests with them), then the
        session's connections are closed and the state files still queued are written."""
        self._closing = True
        await self.timetable.stop()
        await _cancel([r.task for r in self.sources.values()])
        await self.gaps.close()
        if self.session is not None:
            await self.session.close()
        await self.persistence.close()

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
            self.factory.shard = shard
            self.factory.limiters = {}
        self.gaps.configure(config.global_.history)
        self.store.stale_after = config.global_.stale_after
        await self.persistence.move_to(config.global_.state_dir)
        kept, self.sources, self.other_shards = self.sources, {}, []
        defaults = shared_defaults(config)
        for name, settings in wanted.items():
            runtime = kept.get(name)
            if runtime is not None:
                self.sources[name] = runtime
                if runtime.fetcher is not None:
                    runtime.fetcher.timeout = aiohttp.ClientTimeout(total=config.global_.timeout)
                    runtime.fetcher.max_body = config.global_.max_response_bytes
                continue
            runtime = self.factory.build(settings, config, defaults)
            if runtime is None:
                self.other_shards.append(name)
                continue
            if name not in summary.restarted:
                summary.added.append(name)
            self.sources[name] = runtime
            self._open_source(runtime)
        self.factory.keep_limiters(list(self.sources.values()))
        if resharded:
            note_shard(self.metrics, self.shard, list(self.sources.values()), self.other_shards)
        return summary

    async def _retire(self, runtime: SourceRuntime) -> None:
        runtime.retired = True
        await self.timetable.remove(runtime.name)
        await _cancel([runtime.task])
        self.store.remove_source(runtime.name)
        runtime.books.removed()
        del self.sources[runtime.name]

    async def poll_all_once(self) -> bool:
        """Poll every source once, concurrently; True when all succeeded."""
        results = await asyncio.gather(*(self.poll(name) for name in self.sources))
        return all(results)

    async def poll(self, name: str) -> bool:
        """Poll one source now and do the bookkeeping; True when the poll succeeded."""
        runtime = self.sources.get(name)
        if runtime is None or runtime.retired or self._closing:
            return False
        assert runtime.fetcher is not None, "open() first"
        runtime.task = asyncio.current_task()  # type: ignore[assignment]
        try:
            outcome = await poll_and_apply(runtime.provider, runtime.fetcher, self.store, name)
        except asyncio.CancelledError:
            if self._closing or runtime.retired:
                return False
            raise
        finally:
            runtime.task = None
        self._record_outcome(runtime, outcome)
        snapshot = self.persistence.snapshot(runtime)
        ok = outcome.result.ok
        await finished_even_if_cancelled(self._keep(runtime.name, outcome, snapshot))
        return ok

    async def _keep(self, name: str, outcome: PollOutcome, snapshot: StateSnapshot | None) -> None:
        """Queue the state, take the landing page's figures and let go of the poll's samples, each
        in slices (for 10k units each was 10 to 30 ms in one turn); everything else about the
        poll was settled in its last turn."""
        if snapshot is not None:
            await self.persistence.save(snapshot)
        await self.trends.record(name, outcome.result, outcome.at)
        await release(outcome.result.samples, UNITS_RELEASED_PER_TURN)

    def _record_outcome(self, runtime: SourceRuntime, outcome: PollOutcome) -> None:
        """Record the outcome in the exporter's own metrics and status, and plan the retry."""
        name, result = runtime.name, outcome.result
        self.gaps.after_poll(runtime, result, outcome.at)
        credential_pause = self.factory.pause_credential(runtime.provider, result)
        runtime.books.poll_done(result, outcome.at)
        runtime.books.units(len(runtime.provider.active_units()))
        runtime.failures = 0 if result.ok or outcome.answered else runtime.failures + 1
        runtime.retry = self._plan_retry(runtime, result, credential_pause)
        error = None
        if result.ok:
            runtime.failure_log.succeeded()
        else:
            next_try = (runtime.retry.delay, runtime.retry.why) if runtime.retry else (runtime.interval, "interval")
            error = runtime.failure_log.failed(result, next_try if self._started else None)
        runtime.status.finished(result.ok, error, outcome.at, self.timetable.due_at(name))

    def _plan_retry(self, runtime: SourceRuntime, result: PollResult, credential_pause: float | None) -> Retry | None:
        """Move the next poll as the backoff policy says; None keeps the normal schedule. A 429
        that paused the source's credential for longer (no `Retry-After`, or an unreadable one)
        holds this source too: polling before the pause ends would only fail at once."""
        retry = self.backoff.next_try(runtime.interval, result, runtime.failures)
        if credential_pause is not None:
            runtime.status.waiting(credential_pause)
            if retry is None or credential_pause > retry.delay:
                retry = Retry(credential_pause, CREDENTIAL_PAUSED)
        if retry is not None:
            self.timetable.postpone(runtime.name, retry.delay)
            if retry.why == "Retry-After":
                runtime.status.waiting(retry.delay)
        return retry

    def _skipped(self, name: str, count: int) -> None:
        runtime = self.sources.get(name)
        if runtime is not None:
            runtime.books.skipped(count)
            log.debug("polls skipped: the previous one still ran", extra={"source": name, "skipped": count})

    def ready(self) -> bool:
        """Every source has been tried, whatever the answer (see SourceStatus.tried); once so,
        for good: a reload that adds sources, or a new shard that restarts them all, must not take
        every replica out of its Service while a hanging vendor is tried."""
        if not self._ready:
            self._ready = all(runtime.status.tried for runtime in self.sources.values())
        return self._ready


async def finished_even_if_cancelled(steps: Awaitable[None]) -> None:
    """Run `steps` to the end even when the caller is cancelled meanwhile, then let the
    cancellation through: a poll's bookkeeping is all done or (cancelled before it began) none,
    and whoever cancelled and waits for the poll (a reload, a stop) finds its state queued."""
    task = asyncio.ensure_future(steps)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        raise


async def _cancel(tasks: list[asyncio.Task[bool] | None]) -> None:
    running = [task for task in tasks if task is not None and task is not asyncio.current_task()]
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)


def note_shard(metrics: ExporterMetrics, shard: Shard, runtimes: list[SourceRuntime], elsewhere: list[str]) -> None:
    """Publish this replica's shard, and say at start (and at a reshard) what it polls."""
    metrics.shard_ordinal.set(shard.ordinal)
    metrics.total_shards.set(shard.total)
    if shard.sharded:
        log.info(
            "sharded",
            extra={
                "shard": shard.ordinal,
                "total_shards": shard.total,
                "units": sum(len(r.provider.active_units()) for r in runtimes),
                "sources_on_other_shards": ",".join(elsewhere) or "none",
            },
        )
