"""How many Gcore streams one replica can poll on one core: the sizing figure for sharding.

Starts the Gcore simulator in a child process (so its CPU is not counted; there it answers for
every stream id the bench configures), spreads the streams over a few sources, and polls them
all through the real scheduler and fetcher several times, rendering /metrics after each round
as a scrape would. Reports this process's CPU seconds per 1,000 stream polls and what that
means per replica, unsharded and as shard 0 of 3:

    python bench/shard_sizing.py --streams 3000 --sources 10 --rounds 5

Figures are printed, never asserted: they depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from exporter.config import parse_config  # noqa: E402
from exporter.families import AUDIENCE_FAMILIES  # noqa: E402
from exporter.metrics import AudienceStore, ExporterMetrics, Exposition  # noqa: E402
from exporter.scheduler import Scheduler  # noqa: E402
from exporter.sharding import owner  # noqa: E402

API_KEY = "12345$bench"
FIRST_ID = 10_000
SIMULATOR = f"""
import asyncio, sys
sys.path.insert(0, {str(REPO_ROOT)!r})
from exporter.demo import serve
from exporter.demo.gcore import STREAM_PEAKS, GcoreSimulator

STREAM_PEAKS.update((sid, 50.0 + sid % 4000) for sid in range({FIRST_ID}, {FIRST_ID} + int(sys.argv[1])))

async def main():
    runner, url = await serve(GcoreSimulator(api_key={API_KEY!r}).app())
    print(url, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def config_for(base_url: str, streams: int, source_count: int, total: int, shard: int, state_dir: str):  # type: ignore[no-untyped-def]
    ids = list(range(FIRST_ID, FIRST_ID + streams))
    sources = [
        {
            "name": f"bench-{n}",
            "provider": "gcore",
            "base_url": base_url,
            "api_key": API_KEY,
            "stream_ids": ids[n::source_count],
        }
        for n in range(source_count)
    ]
    data = {"global": {"state_dir": state_dir, "total_shards": total, "shard": shard}, "sources": sources}
    return parse_config(data, "<bench>", Path("."))


async def measure(
    base_url: str, streams: int, source_count: int, rounds: int, total: int, state_dir: str
) -> tuple[int, float, float]:
    """(stream polls per round, CPU seconds, wall seconds) for `rounds` rounds of shard 0."""
    config = config_for(base_url, streams, source_count, total, 0, state_dir)
    store = AudienceStore(AUDIENCE_FAMILIES, config.global_.stale_after)
    metrics = ExporterMetrics("bench", platform.python_version())
    scheduler = Scheduler(config, store, metrics)
    exposition = Exposition(store, metrics)
    await scheduler.open()
    try:
        assert await scheduler.poll_all_once(), "warm-up poll failed"
        polls = sum(len(runtime.provider.active_units()) for runtime in scheduler.sources.values())
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(rounds):
            assert await scheduler.poll_all_once(), "a poll failed"
            exposition.body(openmetrics=True)
        return polls, time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await scheduler.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=3000, help="streams configured")
    parser.add_argument("--sources", type=int, default=10, help="sources the streams are spread over")
    parser.add_argument("--rounds", type=int, default=5, help="measured polls of every stream")
    parser.add_argument("--interval", type=float, default=60.0, help="poll interval to size for (Gcore 1m)")
    args = parser.parse_args()

    child = subprocess.Popen([sys.executable, "-c", SIMULATOR, str(args.streams)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        base_url = child.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as state_dir:
            polls, cpu, wall = asyncio.run(measure(base_url, args.streams, args.sources, args.rounds, 1, state_dir))
            shard_polls, shard_cpu, _ = asyncio.run(
                measure(base_url, args.streams, args.sources, args.rounds, 3, state_dir)
            )
    finally:
        child.terminate()
        child.wait(timeout=10)

    per_1k = cpu / (polls * args.rounds) * 1000
    shard_per_1k = shard_cpu / (shard_polls * args.rounds) * 1000
    streams_per_core = args.interval / per_1k * 1000
    started = time.perf_counter()
    hashed = sum(owner(f"source-{n % 100}", str(n), 3) for n in range(100_000))
    hash_us = (time.perf_counter() - started) / 100_000 * 1e6
    print(
        f"python {platform.python_version()} on {platform.machine()}: {polls} streams in {args.sources} sources, "
        f"{args.rounds} rounds"
    )
    print(f"unsharded: {cpu:.2f} CPU s for {polls * args.rounds} stream polls, wall {wall:.2f} s")
    print(f"CPU seconds per 1k stream polls (poll, parse, render, one scrape per round): {per_1k:.3f}")
    print(f"shard 0 of 3: {shard_polls} streams owned, {shard_per_1k:.3f} CPU s per 1k stream polls")
    print(
        f"ratio shard/unsharded per stream poll: {shard_per_1k / per_1k:.2f} "
        "(sharding itself adds only the one owner() hash per unit and process, below)"
    )
    print(f"owner() of one unit among 3 shards: {hash_us:.1f} us, once per unit and process ({hashed} checksum)")
    print(
        f"streams per replica at one core, polled every {args.interval:g}s: about {streams_per_core:,.0f} "
        f"(plan for half that, {streams_per_core / 2:,.0f}, to leave room for scrapes and bursts)"
    )


if __name__ == "__main__":
    main()
