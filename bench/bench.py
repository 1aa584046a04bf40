"""Scrape and poll cost at 1k, 10k and 100k audience series, against plain prometheus_client.

    python bench/bench.py                    # everything, one run (a few minutes)
    python bench/bench.py --sizes 1000 --scrapes 20   # a quick look

Everything goes through the exporter's own code: `cli.Exporter` wires config, store, scheduler
and exposition as the real process does; series are made by `Scheduler.poll` -> the Gcore
provider -> answers computed by the Gcore simulator's own model (no network), so parsing,
`apply_sliced` and rendering are the real ones. Each measurement runs in its own process, so RSS
is that of one exporter and the load generator's CPU is not counted:

- scrape: an exporter process serves `/metrics` on loopback; this process scrapes it over real
  HTTP (keep-alive, one request at a time) for text and OpenMetrics, plain and gzip, and reports
  median and p99 latency (until the whole body is read). A ticker task inside the exporter
  measures how late a 1 ms sleep wakes up: its worst lateness is the longest event-loop stall,
  for (a) those sequential scrapes and (b) a burst of concurrent scrapes while every source
  polls again (re-parse, re-render, re-compress).
- plain registry: the same series in a prometheus_client Gauge, `generate_latest` timed in
  process (no HTTP), and the ratio to our scrape over HTTP.
- poll: an exporter polls N streams once (then again) against the Gcore simulator running in a
  separate process on loopback: CPU seconds (user + system) and RSS of the exporter alone.
- calls: vendor calls per source per hour at each registered provider's default interval, for
  each simulator's demo sources and for one Gcore source with N streams.

Timings depend on the machine; the ratios are what to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import gzip
import http.client
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import prometheus_client
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporter.cli import Exporter  # noqa: E402
from exporter.config import Config, parse_config  # noqa: E402
from exporter.demo import serve, simulators  # noqa: E402
from exporter.demo.gcore import BUCKETS, CLIENT_ID, GcoreSimulator  # noqa: E402
from exporter.fetch import HttpAnswer  # noqa: E402
from exporter.logs import Redactor  # noqa: E402
from exporter.memory import start_housekeeping  # noqa: E402
from exporter.providers import providers  # noqa: E402
from exporter.scheduler import SourceRuntime  # noqa: E402

API_KEY = "12345$bench"
STREAMS_PER_SOURCE = 10_000
CONSTANT_LABELS = {"team": "bench"}
VARIANTS = {
    "text": {},
    "text+gzip": {"Accept-Encoding": "gzip"},
    "openmetrics": {"Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"},
    "openmetrics+gzip": {
        "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        "Accept-Encoding": "gzip",
    },
}


def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bench_config(series: int, base_url: str, state_dir: str) -> Config:
    """Gcore sources of up to 10k streams each (1m buckets), `series` streams in all."""
    sources = []
    for index, first in enumerate(range(0, series, STREAMS_PER_SOURCE)):
        count = min(STREAMS_PER_SOURCE, series - first)
        sources.append(
            {
                "name": f"gcore-{index:02d}",
                "provider": "gcore",
                "base_url": base_url,
                "api_key": API_KEY,
                "granularity": "1m",
                "stream_ids": list(range(1_000_000 + first, 1_000_000 + first + count)),
                "labels": CONSTANT_LABELS,
            }
        )
    return parse_config({"global": {"state_dir": state_dir}, "sources": sources}, "<bench>", Path(state_dir))


class SimulatedFetcher:
    """Answers the Gcore provider's requests from the simulator's audience model, in memory.

    At most 100 requests are in flight and each hands the loop back once, as aiohttp's default
    connection limit and a real answer would, so polling interleaves with scrapes realistically.
    """

    def __init__(self, runtime: SourceRuntime, clock: Any) -> None:
        self.runtime = runtime
        self.model = GcoreSimulator(api_key=API_KEY, clock=clock)
        self.slots = asyncio.Semaphore(100)

    def body(self, params: Mapping[str, str]) -> bytes:
        width = BUCKETS[params["granularity"]]
        start = datetime.fromisoformat(params["from"]).timestamp()
        end = min(datetime.fromisoformat(params["to"]).timestamp(), self.model.clock())
        stream_id = int(params["stream_id"])
        points = [
            [bucket, self.model.viewers(stream_id, bucket, width, self.model.clock())]
            for bucket in range(int(start // width * width), int(end) + 1, width)
        ]
        return json.dumps([{"client": CLIENT_ID, "metrics": {"streams": points}}]).encode()

    @asynccontextmanager
    async def get(
        self,
        endpoint: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[HttpAnswer]:
        async with self.slots:
            await asyncio.sleep(0)
            answer = HttpAnswer(200, {"Content-Type": "application/json"}, self.body(params or {}))
        self.runtime.books.request_done(endpoint, "200", 0.0)
        yield answer


class StallMeter:
    """A task that sleeps 1 ms at a time. How late it wakes is how long the loop was held up
    (`worst_ms`, wall clock: includes time the OS gave the CPU to other processes); the event
    loop thread's CPU time between two wake-ups is how long our own code held it (`busy_ms`,
    what an idle machine would still see). `gc_ms` is the longest garbage collection."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.busy = 0.0
        self.gc = 0.0
        self.ticks = 0
        self._gc_started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc = max(self.gc, time.perf_counter() - self._gc_started)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started, cpu = loop.time(), time.thread_time()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, loop.time() - started - 0.001)
            self.busy = max(self.busy, time.thread_time() - cpu)
            self.ticks += 1

    def take(self) -> dict[str, float]:
        report = {"worst_ms": self.worst * 1000, "busy_ms": self.busy * 1000, "gc_ms": self.gc * 1000}
        self.worst, self.busy, self.gc, self.ticks = 0.0, 0.0, 0.0, 0
        return report


async def serve_worker(series: int) -> None:
    """An exporter holding `series` audience series, serving /metrics until stdin closes."""
    state_dir = tempfile.mkdtemp(prefix="bench-state-")
    config = bench_config(series, "http://127.0.0.1:9", state_dir)
    exporter = Exporter(config, Redactor())
    scheduler = exporter.scheduler
    await scheduler.open()
    collectors = start_housekeeping()
    offset = 0.0

    def shifted(poll: Any) -> Any:
        """The provider's poll at a clock `offset` ahead, so a re-poll sees the next minute."""

        async def run(fetch: Any, now: datetime) -> Any:
            return await poll(fetch, now + timedelta(seconds=offset))

        return run

    for runtime in scheduler.sources.values():
        runtime.fetcher = SimulatedFetcher(runtime, lambda: time.time() + offset)  # type: ignore[assignment]
        runtime.provider.poll = shifted(runtime.provider.poll)  # type: ignore[method-assign]

    async def poll_all() -> float:
        started = cpu_seconds()
        for name in scheduler.sources:
            assert await scheduler.poll(name), f"simulated poll of {name} failed"
            await asyncio.sleep(0)  # polls of different sources are separate scheduler jobs
        return cpu_seconds() - started

    build_cpu = await poll_all()
    for body in ("plain", "gzip"):
        for openmetrics in (False, True):
            if body == "gzip":
                await exporter.exposition.gzip_body(openmetrics)
            else:
                exporter.exposition.body(openmetrics)
    rss_built = rss_mb()[0]
    meter = StallMeter()
    repoll: dict[str, Any] = {"task": None, "cpu": None}

    async def stall(request: web.Request) -> web.Response:
        return web.json_response(meter.take())

    async def start_repoll(request: web.Request) -> web.Response:
        nonlocal offset
        offset += 60.0

        async def run() -> None:
            repoll["cpu"] = await poll_all()

        repoll["task"] = asyncio.ensure_future(run())
        return web.json_response({"started": True})

    async def repoll_state(request: web.Request) -> web.Response:
        task = repoll["task"]
        return web.json_response({"done": task is not None and task.done(), "cpu": repoll["cpu"]})

    async def memory(request: web.Request) -> web.Response:
        now, peak = rss_mb()
        return web.json_response({"rss_mb": now, "peak_mb": peak})

    app = exporter_app(exporter)
    app.router.add_get("/_bench/stall", stall)
    app.router.add_post("/_bench/repoll", start_repoll)
    app.router.add_get("/_bench/repoll", repoll_state)
    app.router.add_get("/_bench/memory", memory)
    runner, base_url = await serve(app)
    ticker = asyncio.ensure_future(meter.run())
    report = {"base_url": base_url, "build_cpu_s": build_cpu, "rss_built_mb": rss_built}
    print(json.dumps(report), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    ticker.cancel()
    for collector in collectors:
        collector.cancel()
    await runner.cleanup()
    await scheduler.close()


def exporter_app(exporter: Exporter) -> web.Application:
    from exporter.web import build_app

    return build_app(exporter.scheduler, exporter.exposition, "/metrics")


def plain_registry_worker(series: int, repeats: int) -> None:
    """The same series in a plain prometheus_client registry; generate_latest timed in process."""
    from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

    prometheus_client.disable_created_metrics()
    registry = prometheus_client.CollectorRegistry()
    gauge = prometheus_client.Gauge(
        "livestream_unique_viewers",
        "Unique viewers in the newest closed bucket of the given granularity (Gcore, via CDN).",
        ["source", "provider", "client", "stream", "granularity", *CONSTANT_LABELS],
        registry=registry,
    )
    model = GcoreSimulator(api_key=API_KEY)
    now = time.time()
    for index in range(series):
        stream_id = 1_000_000 + index
        gauge.labels(
            f"gcore-{index // STREAMS_PER_SOURCE:02d}", "gcore", str(CLIENT_ID), str(stream_id), "1m", "bench"
        ).set(model.viewers(stream_id, now // 60 * 60 - 60, 60, now))
    timings: dict[str, list[float]] = {"text": [], "openmetrics": []}
    for _ in range(repeats):
        for name, generate in (("text", prometheus_client.generate_latest), ("openmetrics", generate_openmetrics)):
            started = time.perf_counter()
            generate(registry)
            timings[name].append(time.perf_counter() - started)
    print(
        json.dumps(
            {
                "text_s": statistics.median(timings["text"]),
                "openmetrics_s": statistics.median(timings["openmetrics"]),
                "rss_mb": rss_mb()[0],
            }
        ),
        flush=True,
    )


async def simulate_worker() -> None:
    """The Gcore simulator alone on loopback (so its CPU is not the exporter's)."""
    simulator = GcoreSimulator(api_key=API_KEY)
    runner, base_url = await serve(simulator.app())
    print(json.dumps({"base_url": base_url}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


async def poll_worker(streams: int, base_url: str) -> None:
    """Poll `streams` Gcore streams twice against the simulator; CPU, wall time, RSS, stalls."""
    state_dir = tempfile.mkdtemp(prefix="bench-state-")
    config = bench_config(streams, base_url, state_dir)
    exporter = Exporter(config, Redactor())
    await exporter.scheduler.open()
    collectors = start_housekeeping()
    meter = StallMeter()
    ticker = asyncio.ensure_future(meter.run())
    polls = []
    for _ in range(2):
        cpu, wall = cpu_seconds(), time.perf_counter()
        ok = await exporter.scheduler.poll_all_once()
        polls.append(
            {
                "ok": ok,
                "cpu_s": cpu_seconds() - cpu,
                "wall_s": time.perf_counter() - wall,
                "stall": meter.take(),
                "rss_mb": rss_mb()[0],
            }
        )
    ticker.cancel()
    for collector in collectors:
        collector.cancel()
    requests = sum(
        sample.value
        for metric in exporter.metrics.requests.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )
    await exporter.scheduler.close()
    print(json.dumps({"polls": polls, "requests": requests}), flush=True)


class Worker:
    """This script in another process, answering one JSON line."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {args} exited with {self.proc.wait()}")
        self.report = json.loads(line)

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def connect(base_url: str) -> http.client.HTTPConnection:
    host, port = base_url.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=120)


def fetch(conn: http.client.HTTPConnection, method: str, path: str, headers: Mapping[str, str]) -> bytes:
    conn.request(method, path, headers=dict(headers))
    response = conn.getresponse()
    body = response.read()
    if response.status != 200:
        raise RuntimeError(f"{method} {path}: HTTP {response.status}")
    return body


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure_scrapes(series: int, scrapes: int) -> dict[str, Any]:
    server = Worker("serve", "--series", str(series))
    base_url = server.report["base_url"]
    try:
        conn = connect(base_url)
        sizes = {}
        plain = fetch(conn, "GET", "/metrics", {})
        for variant, headers in VARIANTS.items():
            body = fetch(conn, "GET", "/metrics", headers)
            if variant.endswith("gzip"):
                unpacked = gzip.decompress(body)
                assert unpacked.count(b"\nlivestream_unique_viewers{") == series, "gzip body lost series"
                if variant == "text+gzip":
                    assert (
                        unpacked.split(b"# HELP livestream_exporter_")[0]
                        == plain.split(b"# HELP livestream_exporter_")[0]
                    )
            sizes[variant] = len(body)
        fetch(conn, "GET", "/_bench/stall", {})
        latency: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        for _ in range(scrapes):
            for variant, headers in VARIANTS.items():
                started = time.perf_counter()
                fetch(conn, "GET", "/metrics", headers)
                latency[variant].append(time.perf_counter() - started)
        sequential_stall = json.loads(fetch(conn, "GET", "/_bench/stall", {}))
        burst = burst_while_repolling(base_url, conn)
        memory = json.loads(fetch(conn, "GET", "/_bench/memory", {}))
        conn.close()
    finally:
        server.stop()
    return {
        "series": series,
        "sizes": sizes,
        "latency": {
            variant: {"median_ms": statistics.median(v) * 1000, "p99_ms": percentile(v, 0.99) * 1000}
            for variant, v in latency.items()
        },
        "sequential_stall": sequential_stall,
        "burst": burst,
        "build_cpu_s": server.report["build_cpu_s"],
        "rss_built_mb": server.report["rss_built_mb"],
        "memory": memory,
    }


def burst_while_repolling(base_url: str, conn: http.client.HTTPConnection, clients: int = 4) -> dict[str, Any]:
    """Scrape from several connections at once, all variants, while every source polls again."""
    fetch(conn, "GET", "/_bench/stall", {})
    fetch(conn, "POST", "/_bench/repoll", {})
    deadline = time.monotonic() + 300
    done = threading.Event()
    counts = [0] * clients
    errors: list[str] = []

    def scraper(index: int) -> None:
        own = connect(base_url)
        try:
            while not done.is_set() and time.monotonic() < deadline:
                for headers in VARIANTS.values():
                    fetch(own, "GET", "/metrics", headers)
                    counts[index] += 1
        except Exception as error:  # reported, not swallowed
            errors.append(repr(error))
        finally:
            own.close()

    threads = [threading.Thread(target=scraper, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    state: dict[str, Any] = {"done": False}
    while time.monotonic() < deadline and not state["done"]:
        time.sleep(0.2)
        state = json.loads(fetch(conn, "GET", "/_bench/repoll", {}))
    time.sleep(0.5)
    done.set()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise RuntimeError(f"scrapes failed during the burst: {errors[:3]}")
    stall = json.loads(fetch(conn, "GET", "/_bench/stall", {}))
    return {"scrapes": sum(counts), "stall": stall, "repoll_cpu_s": state["cpu"]}


def measure_plain_registry(series: int) -> dict[str, Any]:
    worker = Worker("plain", "--series", str(series), "--repeats", "3" if series >= 100_000 else "5")
    worker.stop()
    return worker.report


def measure_poll(streams: int) -> dict[str, Any]:
    simulator = Worker("simulate")
    try:
        poller = Worker("poll", "--series", str(streams), "--base-url", simulator.report["base_url"])
        poller.stop()
    finally:
        simulator.stop()
    return poller.report


def calls_per_hour(streams: int) -> list[tuple[str, str, float, int, float]]:
    """(source, provider, default interval, calls per poll, calls per hour) per demo source of
    every simulator, plus one Gcore source with `streams` streams."""
    known = providers()
    raw: list[dict[str, Any]] = []
    for simulator in simulators():
        raw.extend(simulator.demo_sources("http://127.0.0.1:9"))
    raw.append(
        {
            "name": f"gcore-{streams}-streams",
            "provider": "gcore",
            "api_key": API_KEY,
            "stream_ids": list(range(streams)),
        }
    )
    with tempfile.TemporaryDirectory() as state_dir:
        config = parse_config({"global": {"state_dir": state_dir}, "sources": raw}, "<bench>", Path(state_dir))
    rows = []
    for settings in config.sources:
        provider = known[settings.provider](settings)
        interval = provider.default_interval()
        per_poll = len(provider.active_units())
        rows.append((settings.name, settings.provider, interval, per_poll, per_poll * 3600 / interval))
    covered = {row[1] for row in rows}
    rows.extend((f"({name}: no demo source)", name, 0.0, 0, 0.0) for name in known if name not in covered)
    return rows


def stall_cell(stall: dict[str, float]) -> str:
    return f"{stall['worst_ms']:.1f} / {stall['busy_ms']:.1f} / {stall['gc_ms']:.1f}"


def print_report(
    scrape: list[dict[str, Any]], plain: dict[int, dict[str, Any]], poll: dict[str, Any], streams: int
) -> None:
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"prometheus-client {version('prometheus-client')}, aiohttp {version('aiohttp')}"
    )
    print("\n/metrics over loopback HTTP, ms (median / p99)")
    print(f"{'series':>8} " + " ".join(f"{v:>20}" for v in VARIANTS) + f" {'body MB (text)':>15}")
    for row in scrape:
        cells = " ".join(f"{lat['median_ms']:>9.2f} / {lat['p99_ms']:>7.2f}" for lat in row["latency"].values())
        print(f"{row['series']:>8} {cells} {row['sizes']['text'] / 1e6:>15.2f}")
    print("\nplain prometheus_client registry, generate_latest in process (no HTTP), ms, and how many times slower")
    print(f"{'series':>8} {'text':>10} {'openmetrics':>12} {'vs text':>9} {'vs OM+gzip':>11} {'RSS MB':>8}")
    for row in scrape:
        ref = plain[row["series"]]
        ours_text = row["latency"]["text"]["median_ms"]
        ours_om = row["latency"]["openmetrics+gzip"]["median_ms"]
        print(
            f"{row['series']:>8} {ref['text_s'] * 1000:>10.1f} {ref['openmetrics_s'] * 1000:>12.1f} "
            f"{ref['text_s'] * 1000 / ours_text:>8.0f}x {ref['openmetrics_s'] * 1000 / ours_om:>10.0f}x "
            f"{ref['rss_mb']:>8.1f}"
        )
    print("\nevent loop, longest stall in ms as wall / loop-thread CPU / GC pause (see StallMeter); memory (MB)")
    print(
        f"{'series':>8} {'scrapes':>20} {'burst+repoll':>20} {'burst scrapes':>14} {'repoll CPU s':>13} "
        f"{'RSS built':>10} {'RSS end':>8} {'peak RSS':>9}"
    )
    for row in scrape:
        burst = row["burst"]
        print(
            f"{row['series']:>8} {stall_cell(row['sequential_stall']):>20} {stall_cell(burst['stall']):>20} "
            f"{burst['scrapes']:>14} {burst['repoll_cpu_s']:>13.2f} {row['rss_built_mb']:>10.1f} "
            f"{row['memory']['rss_mb']:>8.1f} {row['memory']['peak_mb']:>9.1f}"
        )
    print(f"\npoll {streams} Gcore streams against the loopback simulator (exporter process only)")
    for index, poll_row in enumerate(poll["polls"]):
        label = "first poll" if index == 0 else "2nd poll, seconds later"
        print(
            f"  {label}: ok={poll_row['ok']} CPU {poll_row['cpu_s']:.2f} s, wall {poll_row['wall_s']:.2f} s, "
            f"= {poll_row['cpu_s'] / 60 * 100:.1f} % of one core at one poll per minute; "
            f"longest stall {stall_cell(poll_row['stall'])} ms; RSS {poll_row['rss_mb']:.1f} MB"
        )
    print(f"  vendor requests made: {poll['requests']:.0f}")
    print("\nvendor calls per source per hour at the provider's default interval")
    print(f"{'source':>28} {'provider':>14} {'interval s':>11} {'calls/poll':>11} {'calls/hour':>11}")
    for name, provider, interval, per_poll, hourly in calls_per_hour(streams):
        print(f"{name:>28} {provider:>14} {interval:>11g} {per_poll:>11} {hourly:>11.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="series counts to measure")
    parser.add_argument("--scrapes", type=int, default=100, help="sequential scrapes per variant")
    parser.add_argument("--poll-streams", type=int, default=10_000, help="streams polled in the poll test")
    parser.add_argument("--worker", choices=["serve", "plain", "simulate", "poll"], help=argparse.SUPPRESS)
    parser.add_argument("--series", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "serve":
        asyncio.run(serve_worker(args.series))
    elif args.worker == "plain":
        plain_registry_worker(args.series, args.repeats)
    elif args.worker == "simulate":
        asyncio.run(simulate_worker())
    elif args.worker == "poll":
        asyncio.run(poll_worker(args.series, args.base_url))
    else:
        sizes = [int(size) for size in args.sizes.split(",")]
        scrape = []
        plain = {}
        for series in sizes:
            print(f"measuring {series} series ...", file=sys.stderr, flush=True)
            scrape.append(measure_scrapes(series, args.scrapes))
            plain[series] = measure_plain_registry(series)
        print(f"polling {args.poll_streams} streams ...", file=sys.stderr, flush=True)
        poll = measure_poll(args.poll_streams)
        print_report(scrape, plain, poll, args.poll_streams)


if __name__ == "__main__":
    main()
