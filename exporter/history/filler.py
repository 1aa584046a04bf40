"""Automatic gap filling: what the exporter missed, fetched from the vendor when the source
answers again and sent to a remote-write receiver (docs/history.md).

A gap is time the exporter itself missed for a unit: the span since the last poll that
published it, whether the exporter was down (the time is kept in `state_dir`) or the source was
failing. The recovering poll starts one history task per source, after the live poll and never
in its way: it shares the source's fetcher, so it waits for the same rate budget. Gaps older
than `max_age` (the receiver's out-of-order window) are left to `backfill`, with a log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge

from exporter.history.points import HistoryResult
from exporter.history.remote_write import Delivery, RemoteWriter, batches, remote_series
from exporter.history.series import SeriesSet
from exporter.history.settings import HistorySettings
from exporter.poll import ALL_UNITS, PollError, PollResult
from exporter.selfmetrics import HISTORY_PENDING, HISTORY_SAMPLES, build

if TYPE_CHECKING:
    from exporter.providers.base import Provider
    from exporter.scheduler import SourceRuntime

PauseCredential = Callable[["Provider", PollResult], object]
"""What the gap filler calls when the vendor refused a history request with a 429
(`SourceFactory.pause_credential`)."""

log = logging.getLogger(__name__)

GAP_AFTER_INTERVALS = 2.0
"""A unit not published for this many poll intervals has a gap (one late poll is no gap)."""
OUTCOMES = ("sent", "rejected", "failed")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class HistoryMetrics:
    """The gap filler's families from `HISTORY_METRICS`, registered once history is configured."""

    def __init__(self, registry: CollectorRegistry) -> None:
        samples, pending = (build(metric, registry) for metric in (HISTORY_SAMPLES, HISTORY_PENDING))
        assert isinstance(samples, Counter) and isinstance(pending, Gauge)
        self.samples = samples
        self.pending = pending


@dataclass
class UnitTimes:
    """When each unit of a source was last published: `at` for every unit not in `behind`."""

    at: float | None = None
    behind: dict[str, float] = field(default_factory=dict)

    def last(self, unit: str) -> float | None:
        return self.behind.get(unit, self.at)

    def as_json(self) -> dict[str, Any]:
        return {"at": self.at, "behind": self.behind}

    @staticmethod
    def from_json(data: Any) -> UnitTimes:
        if not isinstance(data, dict) or not isinstance(data.get("at"), int | float):
            return UnitTimes()
        behind = data.get("behind") if isinstance(data.get("behind"), dict) else {}
        return UnitTimes(float(data["at"]), {k: float(v) for k, v in behind.items() if isinstance(v, int | float)})


@dataclass
class SourceGaps:
    times: UnitTimes
    missing: dict[str, float] = field(default_factory=dict)
    """Units with a gap not yet filled, and since when."""
    task: asyncio.Task[None] | None = None
    logged_refusal: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class StateStore:
    """`<state_dir>/history/<source>.json`, read at start, written atomically off the loop."""

    def __init__(self, state_dir: str) -> None:
        self.directory = Path(state_dir) / "history"
        self._warned = False

    def load(self, source: str) -> UnitTimes:
        try:
            return UnitTimes.from_json(json.loads((self.directory / f"{source}.json").read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return UnitTimes()

    def write(self, source: str, data: dict[str, Any]) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{source}.", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, separators=(",", ":"))
            os.replace(tmp, self.directory / f"{source}.json")
        except OSError as error:
            if not self._warned:
                log.warning(
                    "cannot write history state; a restart's gap will not be filled",
                    extra={"state_dir": str(self.directory), "error": error.strerror or str(error)},
                )
                self._warned = True


class GapFiller:
    """The scheduler's one entry point is `after_poll`; `close` cancels what is in flight."""

    def __init__(
        self,
        settings: HistorySettings | None,
        state_dir: str,
        registry: CollectorRegistry,
        pause_credential: PauseCredential | None = None,
    ) -> None:
        self.settings: HistorySettings | None = None
        self.pause_credential = pause_credential
        """Called with a 429 to a history request, so the credential's live polls wait it out too
        (the vendor counts both against the same budget)."""
        self.state = StateStore(state_dir)
        self.registry = registry
        self.metrics: HistoryMetrics | None = None
        self.sources: dict[str, SourceGaps] = {}
        self._writer: RemoteWriter | None = None
        self.configure(settings)
        self._fills: set[asyncio.Task[None]] = set()
        self._saves: set[asyncio.Task[None]] = set()

    def configure(self, settings: HistorySettings | None) -> None:
        """Take a reloaded `global.history`: the receiver and its credentials apply from the next fill."""
        self.settings = settings
        self._writer = None
        if settings is not None and self.metrics is None:
            self.metrics = HistoryMetrics(self.registry)

    def after_poll(self, runtime: SourceRuntime, result: PollResult, now: float) -> None:
        """Note which units were published; start filling the gaps of those that answered again."""
        if self.settings is None or self.metrics is None or not runtime.provider.history_supported:
            return
        gaps = self.sources.get(runtime.name)
        if gaps is None:
            gaps = self.sources[runtime.name] = SourceGaps(self.state.load(runtime.name))
            for outcome in OUTCOMES:
                self.metrics.samples.labels(runtime.name, runtime.identity.provider, outcome)
        units = runtime.provider.active_units()
        failed = set(units) if ALL_UNITS in result.failures else set(result.failures)
        threshold = GAP_AFTER_INTERVALS * runtime.interval
        behind = {}
        for unit in units:
            last = gaps.times.last(unit)
            if unit in failed:
                if last is not None:
                    behind[unit] = last
            elif last is not None and now - last > threshold and unit not in gaps.missing:
                gaps.missing[unit] = last
        gaps.times = UnitTimes(now, behind)
        self._note_pending(runtime, gaps, now)
        self._keep(self._saves, asyncio.get_running_loop().create_task(self._save(runtime.name, gaps)))
        if gaps.missing and (gaps.task is None or gaps.task.done()):
            gaps.task = asyncio.get_running_loop().create_task(self._fill(runtime, gaps, now))
            self._keep(self._fills, gaps.task)

    def status(self, source: str) -> str | None:
        """A line for the landing page while a source has a gap being filled, else None."""
        gaps = self.sources.get(source)
        if gaps is None:
            return None
        oldest = min([*gaps.missing.values(), *gaps.times.behind.values()], default=None)
        if oldest is None:
            return None
        doing = "filling" if gaps.missing else "waiting for the source to answer to fill"
        return f"{doing} a gap since {iso(oldest)}"

    async def close(self) -> None:
        """Cancel the fills in flight (the next start finds the same gaps) and finish the
        state writes, so the next start knows when each unit was last published."""
        for task in list(self._fills):
            task.cancel()
        await asyncio.gather(*self._fills, *self._saves, return_exceptions=True)

    @staticmethod
    def _keep(tasks: set[asyncio.Task[None]], task: asyncio.Task[None]) -> None:
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _save(self, source: str, gaps: SourceGaps) -> None:
        data = gaps.times.as_json()
        async with gaps.lock:
            await asyncio.to_thread(self.state.write, source, data)

    def _note_pending(self, runtime: SourceRuntime, gaps: SourceGaps, now: float) -> None:
        assert self.metrics is not None
        oldest = min([*gaps.missing.values(), *gaps.times.behind.values()], default=None)
        self.metrics.pending.labels(runtime.name, runtime.identity.provider).set(
            0.0 if oldest is None else max(0.0, now - oldest)
        )

    async def _fill(self, runtime: SourceRuntime, gaps: SourceGaps, now: float) -> None:
        assert self.settings is not None and runtime.fetcher is not None
        start = min(gaps.missing.values())
        oldest_kept = now - self.settings.max_age
        if start < oldest_kept:
            log.warning(
                "gap older than global.history.max_age left to `livestream-exporter backfill`",
                extra={"source": runtime.name, "from": iso(start), "to": iso(oldest_kept)},
            )
            start = oldest_kept
        try:
            history = await runtime.provider.history(runtime.fetcher, start, now)
        except Exception as error:  # a history bug must never stop live polling
            log.exception("history request failed unexpectedly", extra={"source": runtime.name})
            history = HistoryResult(failures={ALL_UNITS: PollError(f"internal error: {type(error).__name__}")})
        if history.kept_since is not None:
            log.warning(
                "the vendor no longer keeps the oldest part of the gap; it stays empty",
                extra={"source": runtime.name, "from": iso(start), "to": iso(history.kept_since)},
            )
        if self.pause_credential is not None and any(error.rate_limited for error in history.failures.values()):
            self.pause_credential(runtime.provider, PollResult(failures=history.failures))
        if history.failures:
            log.info(
                "history not available yet; trying again after the next good poll",
                extra={"source": runtime.name, "units": len(history.failures)},
            )
        filled = [unit for unit in gaps.missing if unit in history.samples and ALL_UNITS not in history.failures]
        series = SeriesSet()
        for unit in filled:
            since = max(gaps.missing[unit], start)
            points = (point for point in history.samples[unit] if point.timestamp > since)
            series.add(runtime.identity, points, self.settings.labels)
        await self._deliver(runtime, gaps, series)
        for unit in filled:
            gaps.missing.pop(unit, None)
        self._note_pending(runtime, gaps, time.time())

    async def _deliver(self, runtime: SourceRuntime, gaps: SourceGaps, series: SeriesSet) -> None:
        assert self.metrics is not None and self.settings is not None and runtime.fetcher is not None
        writer = self._remote_writer(runtime.fetcher.session)
        remote = remote_series(series)
        for batch in batches(remote):
            count = sum(len(points) for _, points in batch)
            delivery = await writer.send(batch) if writer else Delivery("failed", "receiver credentials unreadable")
            self.metrics.samples.labels(runtime.name, runtime.identity.provider, delivery.outcome).inc(count)
            if delivery.outcome != "sent":
                self._report(runtime, gaps, delivery, count)
        if remote:
            log.info("gap filled", extra={"source": runtime.name, "samples": series.sample_count})

    def _report(self, runtime: SourceRuntime, gaps: SourceGaps, delivery: Delivery, count: int) -> None:
        """Warn once per kind of refusal (until a batch goes through), debug after that."""
        kind = delivery.reason.split(":")[0]
        extra = {"source": runtime.name, "outcome": delivery.outcome, "reason": delivery.reason, "samples": count}
        if kind != gaps.logged_refusal:
            gaps.logged_refusal = kind
            log.warning("history not delivered", extra=extra)
        else:
            log.debug("history not delivered again", extra=extra)

    def _remote_writer(self, session: aiohttp.ClientSession) -> RemoteWriter | None:
        assert self.settings is not None
        if self._writer is None or self._writer.session is not session:
            try:
                self._writer = RemoteWriter(session, self.settings, timeout=30.0)
            except OSError as error:
                log.error(str(error))
                return None
        return self._writer
