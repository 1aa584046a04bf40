"""30 days of a Streams Charts source following 10k streams: credit ledger, counters, state file.

    python bench/state_bench.py                      # 10k streams, one poll an hour, 30 days
    python bench/state_bench.py --streams 1000 --interval 900

The first and the last poll of the 30 days go through the real path: `StreamsCharts.poll` through
the poll's `CountingFetch` (bounded concurrency, turns shared, ledger, parsing of the vendor
page's own example body, answered in process without a network), then
`AudienceStore.apply_sliced`, then a snapshot (`counter_entries` and `export_state`, as the
scheduler takes it) turned into JSON text by `Persistence.save` and written by the writer thread,
while a 1 ms ticker on the event loop measures how late it wakes (the loop's longest stall while
the state is encoded and written). The polls in between book the same calls in the same ledger directly
(`CreditLedger.reserve` per unit, as a poll does), so 30 days of charges take seconds, not days.

Printed: reserve time per poll (all units) in the first and the last cycle, the whole poll's
time and the loop's longest stall during it (1 ms ticker), taking the snapshot on the loop,
turning it into JSON text (in slices on the loop), the loop's longest stall meanwhile and while
the state is written, and
the state file's size after the first poll and after 30 days. `run()` returns the same figures
as a dict for the main bench's table. The in-process vendor answers at once, so a poll is pure
CPU. The garbage collector is set up as the exporter sets it up (`exporter.memory`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporter.credits import PERIOD_SECONDS  # noqa: E402
from exporter.families import AUDIENCE_FAMILIES  # noqa: E402
from exporter.fetch import HttpAnswer  # noqa: E402
from exporter.memory import start_housekeeping  # noqa: E402
from exporter.metrics import AudienceStore, SourceIdentity  # noqa: E402
from exporter.persistence import Persistence, StateSnapshot  # noqa: E402
from exporter.polling import CountingFetch  # noqa: E402
from exporter.providers.streamscharts import StreamsCharts, StreamsChartsSettings  # noqa: E402

BODY = json.loads((ROOT / "tests/fixtures/streamscharts/standard.json").read_text())
BODY["data"]["stream_end"] = None
START = datetime(2026, 1, 1, tzinfo=UTC)


class InProcessVendor:
    """A `Fetcher` answering in process, so the poll's own cost is what is measured."""

    def __init__(self) -> None:
        self.hours_watched = 1000.0

    @asynccontextmanager
    async def get(self, endpoint: str, url: str, **_: Any) -> AsyncIterator[HttpAnswer]:
        """The vendor's documented answer for every stream, its viewer total growing with time,
        read through the exporter's own answer type."""
        await asyncio.sleep(0)
        body = {"data": {**BODY["data"], "hours_watched": self.hours_watched}}
        yield HttpAnswer(200, {}, json.dumps(body).encode())


def settings(streams: int) -> StreamsChartsSettings:
    """10k streams on 2k channels (five streams each), standard set, no budget cap."""
    entries = [
        {"platform": "twitch", "channel": f"channel{i // 5}", "stream_id": str(10**10 + i)} for i in range(streams)
    ]
    return StreamsChartsSettings.model_validate(
        {
            "name": "sc",
            "provider": "streamscharts",
            "client_id": "bench-client",
            "token": "bench-token",
            "streams": entries,
        }
    )


async def _ticker(lateness: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(0.001)
        lateness.append(time.perf_counter() - before - 0.001)


async def _poll_and_save(
    provider: StreamsCharts, store: AudienceStore, vendor: InProcessVendor, persistence: Persistence, now: datetime
) -> dict[str, float]:
    poll_lateness: list[float] = []
    poll_done = asyncio.Event()
    poll_ticker = asyncio.ensure_future(_ticker(poll_lateness, poll_done))
    started = time.perf_counter()
    result = await provider.poll(CountingFetch(vendor), now)
    await store.apply_sliced("sc", result, now.timestamp())
    polled = time.perf_counter()
    poll_done.set()
    await poll_ticker
    assert result.ok, result.failures
    snapshot = StateSnapshot("sc", store.counter_entries("sc"), provider.export_state())
    taken = time.perf_counter()
    lateness: list[float] = []
    stop = asyncio.Event()
    ticker = asyncio.ensure_future(_ticker(lateness, stop))
    await asyncio.sleep(0.01)
    encoding = time.perf_counter()
    await persistence.save(snapshot)
    encoded = time.perf_counter()
    await asyncio.to_thread(persistence.flush)
    stop.set()
    await ticker
    return {
        "poll_s": polled - started,
        "poll_stall_ms": max(poll_lateness) * 1000,
        "snapshot_ms": (taken - polled) * 1000,
        "serialise_ms": (encoded - encoding) * 1000,
        "write_stall_ms": max(lateness) * 1000,
        "file_mb": persistence.files.path("sc").stat().st_size / 1e6,
    }


def _reserve_cycle(provider: StreamsCharts, now: float) -> float:
    started = time.perf_counter()
    for unit in provider.all_units:
        provider.ledger.reserve(unit.ledger_key, unit.price, now)
    return time.perf_counter() - started


async def _run(streams: int, interval: float, directory: str) -> dict[str, Any]:
    provider = StreamsCharts(settings(streams))
    store = AudienceStore(AUDIENCE_FAMILIES, stale_after=1e9)
    store.add_source(SourceIdentity("sc", "streamscharts"))
    vendor = InProcessVendor()
    persistence = Persistence(store, directory)
    collectors = start_housekeeping()
    cycles = int(PERIOD_SECONDS // interval)
    figures: dict[str, Any] = {"streams": streams, "interval_s": interval, "cycles": cycles}
    first = await _poll_and_save(provider, store, vendor, persistence, START)
    figures["first"] = {**first, "reserve_ms": _reserve_cycle(provider, START.timestamp() + 1) * 1000}
    for cycle in range(2, cycles - 1):
        _reserve_cycle(provider, START.timestamp() + cycle * interval)
    last_time = START + timedelta(seconds=(cycles - 1) * interval)
    vendor.hours_watched += 5000.0
    reserve_last = _reserve_cycle(provider, last_time.timestamp() - 1)
    last = await _poll_and_save(provider, store, vendor, persistence, last_time)
    figures["last"] = {**last, "reserve_ms": reserve_last * 1000}
    figures["ledger_entries"] = len(provider.ledger.export()["spent"])
    await persistence.close()
    for collector in collectors:
        collector.cancel()
    return figures


def run(streams: int = 10_000, interval: float = 3600.0) -> dict[str, Any]:
    """The figures above, for the main bench's table."""
    with tempfile.TemporaryDirectory(prefix="state-bench-") as directory:
        return asyncio.run(_run(streams, interval, directory))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=3600.0, help="seconds between polls (default 3600)")
    args = parser.parse_args()
    started = time.perf_counter()
    figures = run(args.streams, args.interval)
    print(f"Streams Charts, {figures['streams']} streams, a poll every {figures['interval_s']:.0f} s for 30 days")
    print(f"{'':28}{'first cycle':>14}{'last cycle':>14}")
    rows = [
        ("reserve, all units (ms)", "reserve_ms", "{:.1f}"),
        ("whole poll + apply (s)", "poll_s", "{:.2f}"),
        ("loop stall during poll (ms)", "poll_stall_ms", "{:.1f}"),
        ("snapshot on the loop (ms)", "snapshot_ms", "{:.1f}"),
        ("JSON text, sliced on the loop (ms)", "serialise_ms", "{:.0f}"),
        ("loop stall while writing (ms)", "write_stall_ms", "{:.1f}"),
        ("state file (MB)", "file_mb", "{:.2f}"),
    ]
    for label, key, form in rows:
        print(f"{label:28}{form.format(figures['first'][key]):>14}{form.format(figures['last'][key]):>14}")
    print(f"ledger spending entries after 30 days: {figures['ledger_entries']}")
    print(f"bench took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
