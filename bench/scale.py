"""Large accounts against a real exporter process: event-loop stalls, poll time, memory, scrape cost.

    python bench/scale.py            # every scenario at full size (several minutes)
    python bench/scale.py --quick    # smaller sizes and fewer polls (about two minutes)
    python bench/scale.py --only gcore-100k,gcore-1m

Each scenario starts the vendor simulators and `python -m exporter` (through a thin wrapper that
adds a ticker task and times `Scheduler.poll`) as separate processes on loopback, and a third
process that asks `/-/healthy` every 5 ms. It prints one table: per scenario, the longest
`/-/healthy` answer during the first poll, the last poll and the whole run (what Kubernetes and
Prometheus see), the ticker's worst lateness (a 1 ms sleep inside the exporter's loop), poll time,
RSS after the first and the last poll and peak RSS (VmHWM); then the scrape rows (our /metrics
over HTTP against a plain prometheus_client registry, from bench/bench.py, and node_exporter's
textfile collector and pushgateway when their binaries are installed). Timings depend on the
machine and its load: a busy machine adds its own waits to every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporter.demo import serve  # noqa: E402

WINDOW = 0.05
"""Seconds per line the ticker and the prober write: the worst figure seen in that window."""
PROBE_EVERY = 0.005
STALL_BAR_MS = 20.0
GCORE_KEY = "12345$scale"
SC_ID, SC_TOKEN = "scale-client", "scale-token"
CF_TOKEN, CF_ACCOUNT, CF_APP = "scale-cf-token", "acc0000000000000000000000000000a", "app0000000000000000000000000000a"


# --- roles: processes this script starts --------------------------------------------------------


def rss_mb(pid: int | str = "self") -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


class Report:
    """JSON lines appended to a file, one per window or event, flushed as written."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "a", buffering=1)  # noqa: SIM115

    def write(self, **fields: Any) -> None:
        self._file.write(json.dumps(fields) + "\n")


def run_exporter(report_path: str, exporter_args: list[str]) -> int:
    """`python -m exporter`, plus a ticker task on its loop and a record of every poll."""
    import exporter.cli as cli
    from exporter.scheduler import Scheduler

    report = Report(report_path)
    poll = Scheduler.poll

    async def timed_poll(self: Scheduler, name: str) -> bool:
        started = time.time()
        ok = await poll(self, name)
        now, peak = rss_mb()
        report.write(poll=name, start=started, end=time.time(), ok=ok, rss_mb=now, peak_mb=peak)
        return ok

    Scheduler.poll = timed_poll  # type: ignore[method-assign]
    amain = cli.amain

    async def ticking_amain(args: argparse.Namespace, redactor: Any) -> int:
        if os.environ.get("SCALE_TURNS"):
            TurnRecorder(report, asyncio.get_running_loop())
        ticker = asyncio.ensure_future(tick(report))
        try:
            return await amain(args, redactor)
        finally:
            ticker.cancel()

    cli.amain = ticking_amain  # type: ignore[assignment]
    return cli.main(exporter_args)


async def tick(report: Report) -> None:
    """Sleep 1 ms at a time: how late it wakes is how long the loop was held (wall clock, so a
    busy machine's waits count too); the loop thread's CPU time between two wake-ups is how long
    the exporter's own code held it (what an idle machine would still see)."""
    loop = asyncio.get_running_loop()
    worst = busy = 0.0
    window_end = loop.time() + WINDOW
    collections = GcPauses()
    while True:
        started, cpu = loop.time(), time.thread_time()
        await asyncio.sleep(0.001)
        woke = loop.time()
        worst = max(worst, woke - started - 0.001)
        busy = max(busy, time.thread_time() - cpu)
        if woke >= window_end:
            report.write(t=time.time(), late_ms=worst * 1000, busy_ms=busy * 1000, gc_ms=collections.take() * 1000)
            worst = busy = 0.0
            window_end = woke + WINDOW


class TurnRecorder:
    """With `--reports`: every turn of the event loop whose callbacks ran longer than
    TURN_REPORTED_MS, with its longest callbacks (a task is named by the coroutines it awaits in
    when it hands the loop back) and, for a callback that ran over 4 ms, where a sampling thread
    found the loop thread meanwhile (it needs the GIL, so it sees a long C call only after it)."""

    def __init__(self, report: Report, loop: asyncio.AbstractEventLoop) -> None:
        self.report = report
        self.callbacks: list[tuple[float, str]] = []
        self.running_since = 0.0
        self.seen: list[str] = []
        run_once = loop._run_once  # type: ignore[attr-defined]
        handle_run = asyncio.events.Handle._run

        def timed_run(handle: asyncio.Handle) -> None:
            self.seen = []
            self.running_since = started = time.perf_counter()
            handle_run(handle)
            self.running_since = 0.0
            took = time.perf_counter() - started
            if took > 0.0005:
                where = describe(handle)
                if self.seen:
                    where += " | held in: " + "; ".join(f"{n}x {w}" for w, n in Counter(self.seen).most_common(5))
                self.callbacks.append((took * 1000, where))

        def timed_turn() -> None:
            self.callbacks = []
            started = time.perf_counter()
            run_once()
            total = sum(took for took, _ in self.callbacks)
            if total > TURN_REPORTED_MS:
                longest = sorted(self.callbacks, reverse=True)[:4]
                self.report.write(
                    t=time.time(),
                    turn_ms=(time.perf_counter() - started) * 1000,
                    callbacks_ms=total,
                    count=len(self.callbacks),
                    longest=[f"{took:.1f} {where}" for took, where in longest],
                )

        def timed_collection(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                self.collecting_since = time.perf_counter()
            elif (took := time.perf_counter() - self.collecting_since) > 0.002:
                self.callbacks.append((took * 1000, f"gc of generation {info['generation']}"))

        self.collecting_since = 0.0
        gc.callbacks.append(timed_collection)
        asyncio.events.Handle._run = timed_run  # type: ignore[method-assign]
        loop._run_once = timed_turn  # type: ignore[attr-defined]
        sys.setswitchinterval(0.0005)
        threading.Thread(target=self.sample, args=(threading.get_ident(),), daemon=True).start()

    def sample(self, loop_thread: int) -> None:
        while True:
            time.sleep(0.001)
            since = self.running_since
            if since and time.perf_counter() - since > 0.002:
                frame, names = sys._current_frames().get(loop_thread), []
                while frame is not None and len(names) < 7:
                    names.append(f"{Path(frame.f_code.co_filename).stem}:{frame.f_lineno}:{frame.f_code.co_name}")
                    frame = frame.f_back
                self.seen.append(" < ".join(names))


TURN_REPORTED_MS = 8.0


def describe(handle: asyncio.Handle) -> str:
    callback = handle._callback  # type: ignore[attr-defined]
    task = getattr(callback, "__self__", None)
    if isinstance(task, asyncio.Task):
        chain, awaited = [], task.get_coro()
        while awaited is not None and len(chain) < 8:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None)
            name = getattr(awaited, "__qualname__", type(awaited).__name__)
            chain.append(f"{name}:{frame.f_lineno}" if frame else name)
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "ag_await", None)
        return " > ".join(chain)
    return getattr(callback, "__qualname__", repr(callback))


class GcPauses:
    """The longest garbage collection since the last `take`."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.longest = max(self.longest, time.perf_counter() - self._started)

    def take(self) -> float:
        longest, self.longest = self.longest, 0.0
        return longest


def run_prober(base_url: str, report_path: str) -> None:
    """Ask /-/healthy every 5 ms on one keep-alive connection; the longest answer per window. A
    thread scrapes /metrics as Prometheus does (its Accept header, gzip) every SCRAPE_EVERY s."""
    report = Report(report_path)
    threading.Thread(target=scrape_forever, args=(base_url, report), daemon=True).start()
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    worst, window_end = 0.0, time.monotonic() + WINDOW
    while True:
        started = time.monotonic()
        try:
            conn.request("GET", "/-/healthy")
            conn.getresponse().read()
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection(host, int(port), timeout=120)
        done = time.monotonic()
        worst = max(worst, done - started)
        if done >= window_end:
            report.write(t=time.time(), answer_ms=worst * 1000)
            worst, window_end = 0.0, done + WINDOW
        time.sleep(max(0.0, PROBE_EVERY - (time.monotonic() - started)))


SCRAPE_EVERY = 2.0
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
}


def scrape_forever(base_url: str, report: Report) -> None:
    while True:
        started = time.monotonic()
        with suppress(OSError, http.client.HTTPException):
            median_scrape(f"{base_url}/metrics", 1, PROMETHEUS_HEADERS)
        report.write(t=time.time(), scrape_ms=(time.monotonic() - started) * 1000)
        time.sleep(max(0.0, SCRAPE_EVERY - (time.monotonic() - started)))


def account_body(clients: int, first: int, last: int, width: int, now: float) -> bytes:
    """Gcore's documented answer for an account of `clients` clients: a point per bucket from the
    bucket holding `from` to now, the open bucket prorated."""
    buckets = list(range(first, last + 1, width))
    parts = []
    for client in range(clients):
        points = ",".join(
            f"[{bucket},{(client * 7919 + bucket // width) % 5000 * (min(now - bucket, width) / width):.0f}]"
            for bucket in buckets
        )
        parts.append(f'{{"client":{100_000 + client},"metrics":{{"streams":[{points}]}}}}')
    return ("[" + ",".join(parts) + "]").encode()


def gcore_account_app(clients: int) -> web.Application:
    """A Gcore account whose answer without `stream_id` holds `clients` clients; bodies are built
    once per window (in this process, not the exporter's) and kept for the next poll."""
    cache: dict[tuple[int, int], bytes] = {}

    async def viewers(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"APIKey {GCORE_KEY}":
            return web.json_response({"message": "bad key"}, status=401)
        width = {"1m": 60, "5m": 300}[request.query.get("granularity", "1m")]
        start = int(parse_time(request.query["from"]) // width * width)
        now = time.time()
        last = int(min(parse_time(request.query["to"]), now) // width * width)
        key = (start, last)
        if key not in cache:
            cache.clear()
            cache[key] = await asyncio.to_thread(account_body, clients, start, last, width, now)
        return web.Response(body=cache[key], content_type="application/json")

    app = web.Application()
    app.router.add_get("/streaming/statistics/stream/viewers", viewers)
    return app


def parse_time(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def streamscharts_app(streams: int) -> web.Application:
    """The Streams Charts simulator following `streams` live Twitch streams besides its own."""
    from exporter.demo.streamscharts import Stream, StreamsChartsSimulator

    simulator = StreamsChartsSimulator(client_id=SC_ID, token=SC_TOKEN, balance=10_000_000)
    now = time.time()
    for index in range(streams):
        stream = Stream(
            "twitch", f"scale_{index}", str(80_000_000 + index), f"Scale_{index}", str(60_000_000_000 + index),
            "bench stream", "en", now - 3600 - index % 7200, None, float(50 + index % 5000), (("Chess", 1.0),),
        )  # fmt: skip
        simulator.streams[(stream.platform, stream.channel, stream.stream_id)] = stream
    return simulator.app()


def static_app(size: int) -> web.Application:
    """`size` bytes at /metrics, served by aiohttp as they are: the floor of a scrape of that size
    over loopback HTTP with the bench's client, whatever the server does to make the body."""
    body = b"x" * size

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    return app


def simulator_app(kind: str, size: int) -> web.Application:
    if kind == "static":
        return static_app(size)
    if kind == "gcore-account":
        return gcore_account_app(size)
    if kind == "gcore-streams":
        from exporter.demo.gcore import GcoreSimulator

        return GcoreSimulator(api_key=GCORE_KEY).app()
    if kind == "streamscharts":
        return streamscharts_app(size)
    from exporter.demo.cloudflare import CloudflareSimulator

    return CloudflareSimulator(api_token=CF_TOKEN, account_id=CF_ACCOUNT, app_id=CF_APP).app()


async def run_simulator(kind: str, size: int) -> None:
    runner, base_url = await serve(simulator_app(kind, size))
    print(json.dumps({"base_url": base_url}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


# --- the scenarios -------------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    description: str
    simulators: dict[str, tuple[str, int]]
    """Name in the config -> (simulator kind, size)."""
    sources: Callable[[dict[str, str]], list[dict[str, Any]]]
    polls: int
    watched: str
    """The source whose polls are counted and timed."""
    global_: dict[str, Any] = field(default_factory=dict)


def scenarios(quick: bool) -> list[Scenario]:
    account = 30_000 if quick else 100_000
    million = 300_000 if quick else 1_000_000
    followed = 2_000 if quick else 10_000
    gcore_streams = 2_000 if quick else 10_000

    def gcore_account(urls: dict[str, str]) -> list[dict[str, Any]]:
        return [
            {"name": "reseller", "provider": "gcore", "base_url": urls["gcore"], "api_key": GCORE_KEY, "interval": "5s"}
        ]

    def streamscharts(urls: dict[str, str]) -> list[dict[str, Any]]:
        return [
            {
                "name": "followed",
                "provider": "streamscharts",
                "base_url": urls["streamscharts"],
                "client_id": SC_ID,
                "token": SC_TOKEN,
                "streams": [
                    {"platform": "twitch", "channel": f"scale_{i}", "stream_id": str(60_000_000_000 + i)}
                    for i in range(followed)
                ],
                "credits_budget": 10_000_000,
                "interval": "10s",
            }
        ]

    def with_cloudflare(urls: dict[str, str]) -> list[dict[str, Any]]:
        cloudflare = {
            "name": "cloudflare",
            "provider": "cloudflare",
            "base_url": urls["cloudflare"],
            "api_token": CF_TOKEN,
            "account_id": CF_ACCOUNT,
            "app_id": CF_APP,
            "interval": "10s",
        }
        return [*streamscharts(urls), cloudflare]

    def gcore_many(urls: dict[str, str]) -> list[dict[str, Any]]:
        return [
            {
                "name": "streams",
                "provider": "gcore",
                "base_url": urls["gcore"],
                "api_key": GCORE_KEY,
                "stream_ids": list(range(1_000_000, 1_000_000 + gcore_streams)),
                "interval": "15s",
            }
        ]

    big = {"max_response_bytes": 1 << 30}
    return [
        Scenario(
            "gcore-100k",
            f"Gcore account, {account // 1000}k clients in one answer, every 5 s",
            {"gcore": ("gcore-account", account)},
            gcore_account,
            5 if quick else 20,
            "reseller",
        ),
        Scenario(
            "gcore-1m",
            f"Gcore account, {million // 1000}k clients in one answer",
            {"gcore": ("gcore-account", million)},
            gcore_account,
            2 if quick else 3,
            "reseller",
            big,
        ),
        Scenario(
            "streamscharts-10k",
            f"Streams Charts following {followed // 1000}k streams",
            {"streamscharts": ("streamscharts", followed)},
            streamscharts,
            2 if quick else 4,
            "followed",
        ),
        Scenario(
            "streamscharts-cloudflare",
            f"Streams Charts {followed // 1000}k + Cloudflare, counters persisted",
            {"streamscharts": ("streamscharts", followed), "cloudflare": ("cloudflare", 0)},
            with_cloudflare,
            2 if quick else 3,
            "followed",
        ),
        Scenario(
            "gcore-10k-streams",
            f"Gcore, {gcore_streams // 1000}k streams (one request each)",
            {"gcore": ("gcore-streams", 0)},
            gcore_many,
            2,
            "streams",
        ),
    ]


class Child:
    """This script (or another command) in its own process; stopped by its own handle."""

    def __init__(self, args: list[str], reads_line: bool = False, **popen: Any) -> None:
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT, **popen)
        self.line: dict[str, Any] = {}
        if reads_line:
            assert self.proc.stdout is not None
            raw = self.proc.stdout.readline()
            if not raw:
                raise RuntimeError(f"{args[:4]} exited with {self.proc.wait()}")
            self.line = json.loads(raw)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        with suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def started(children: list[Child]) -> Iterator[list[Child]]:
    try:
        yield children
    finally:
        for child in reversed(children):
            child.stop()


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = []
    for raw in path.read_text().splitlines():
        with suppress(json.JSONDecodeError):
            lines.append(json.loads(raw))
    return lines


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.2)


def write_config(scenario: Scenario, urls: dict[str, str], work: Path) -> Path:
    """The scenario's config; `global` keys this version does not know are left out."""
    from exporter.config import ConfigError, parse_config

    state_dir = work / "state"
    state_dir.mkdir(exist_ok=True)
    raw = {"global": {"state_dir": str(state_dir), **scenario.global_}, "sources": scenario.sources(urls)}
    try:
        parse_config(raw, "<scale>", work)
    except ConfigError:
        raw["global"] = {"state_dir": str(state_dir)}
    path = work / "config.json"
    path.write_text(json.dumps(raw))
    return path


SIMULATOR_NICENESS = 10
"""The vendors' simulators yield the CPU to the exporter and the prober: a vendor's servers are
not on the exporter's machine, and on a 2-core VM a simulator answering 10k requests per poll
otherwise takes the exporter's core from it at random moments, which the prober counts as a
stall (the ticker's "loop CPU" column is unaffected either way)."""


def run_scenario(scenario: Scenario, timeout: float, keep: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"scale-{scenario.name}-") as tmp:
        work = Path(tmp)
        exporter_report, probe_report = work / "exporter.jsonl", work / "probe.jsonl"
        children: list[Child] = []
        with started(children):
            urls = {}
            for name, (kind, size) in scenario.simulators.items():
                command = [sys.executable, __file__, "--role", "simulator", "--kind", kind, "--size", str(size)]
                child = Child(command, reads_line=True)
                os.setpriority(os.PRIO_PROCESS, child.proc.pid, SIMULATOR_NICENESS)
                children.append(child)
                urls[name] = child.line["base_url"]
            config = write_config(scenario, urls, work)
            base_url = f"http://127.0.0.1:{free_port()}"
            environment = {**os.environ, "SCALE_TURNS": "1"} if keep is not None else None
            exporter = Child(
                [
                    sys.executable, __file__, "--role", "exporter", "--report", str(exporter_report), "--",
                    f"--config={config}", f"--web.listen-address={base_url.removeprefix('http://')}",
                    "--log.level=warn",
                ],
                stderr=subprocess.DEVNULL,
                env=environment,
            )  # fmt: skip
            children.append(exporter)
            wait_until(lambda: read_lines(exporter_report) != [], 60, "exporter did not start")
            prober = [sys.executable, __file__, "--role", "prober", "--url", base_url, "--report", str(probe_report)]
            children.append(Child(prober))

            def polls_done() -> list[dict[str, Any]]:
                return [line for line in read_lines(exporter_report) if line.get("poll") == scenario.watched]

            wait_until(lambda: len(polls_done()) >= scenario.polls, timeout, f"{scenario.name}: too few polls")
            peak = rss_mb(exporter.proc.pid)[1]
        polls = polls_done()[: scenario.polls]
        ticks = [line for line in read_lines(exporter_report) if "late_ms" in line]
        probes = read_lines(probe_report)
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            for report in (exporter_report, probe_report):
                shutil.copy(report, keep / f"{scenario.name}-{report.name}")
    first, last = polls[0], polls[-1]
    probes, scrapes = [line for line in probes if "answer_ms" in line], [line for line in probes if "scrape_ms" in line]
    probing_from = probes[0]["t"] - WINDOW if probes else first["start"]

    def worst(lines: list[dict[str, Any]], key: str, start: float, end: float) -> float:
        return max((line[key] for line in lines if start <= line["t"] <= end + 2 * WINDOW), default=float("nan"))

    return {
        "scenario": scenario,
        "polls": len(polls),
        "ok": all(poll["ok"] for poll in polls),
        "first_s": first["end"] - first["start"],
        "last_s": last["end"] - last["start"],
        "healthy_first": worst(probes, "answer_ms", max(first["start"], probing_from), first["end"]),
        "healthy_last": worst(probes, "answer_ms", last["start"], last["end"]),
        "healthy_all": worst(probes, "answer_ms", probing_from, last["end"]),
        "scrape_all": worst(scrapes, "scrape_ms", probing_from, last["end"]),
        "late_all": worst(ticks, "late_ms", first["start"], last["end"]),
        "busy_all": worst(ticks, "busy_ms", first["start"], last["end"]),
        "gc_all": worst(ticks, "gc_ms", first["start"], last["end"]),
        "rss_first": first["rss_mb"],
        "rss_last": last["rss_mb"],
        "peak": peak,
    }


# --- scrape rows ---------------------------------------------------------------------------------


def measure_scrape_ratios(series: int, scrapes: int) -> dict[str, float]:
    """Our /-/metrics over HTTP against a plain prometheus_client registry (bench/bench.py)."""
    sys.path.insert(0, str(ROOT / "bench"))
    import bench

    ours = bench.measure_scrapes(series, scrapes)
    plain = bench.measure_plain_registry(series)
    text = ours["latency"]["text"]["median_ms"]
    openmetrics = ours["latency"]["openmetrics+gzip"]["median_ms"]
    return {
        "text_ms": text,
        "openmetrics_ms": openmetrics,
        "plain_text_ms": plain["text_s"] * 1000,
        "plain_openmetrics_ms": plain["openmetrics_s"] * 1000,
    }


def textfile(series: int) -> str:
    labels = 'source="gcore",provider="gcore",stream="all",granularity="1m"'
    lines = ["# TYPE livestream_unique_viewers gauge"]
    lines += [f'livestream_unique_viewers{{{labels},client="{i}"}} {i % 977}' for i in range(series)]
    return "\n".join(lines) + "\n"


def median_scrape(url: str, scrapes: int, headers: dict[str, str] | None = None) -> float:
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    path = "/" + url.removeprefix("http://").split("/", 1)[1]
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    timings = []
    for _ in range(scrapes):
        started = time.perf_counter()
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        response.read()
        timings.append(time.perf_counter() - started)
    conn.close()
    return statistics.median(timings) * 1000


def binary(*names: str) -> str | None:
    return next((found for name in names if (found := shutil.which(name))), None)


def measure_anchors(series: int, scrapes: int) -> dict[str, float | None]:
    """node_exporter's textfile collector and pushgateway holding the same series, if installed,
    and a static body of the same size served by aiohttp (the transfer's floor)."""
    figures: dict[str, float | None] = {"node_exporter_ms": None, "pushgateway_ms": None}
    body = textfile(series)
    serving = [sys.executable, __file__, "--role", "simulator", "--kind", "static", "--size", str(len(body))]
    static = Child(serving, reads_line=True)
    with started([static]):
        figures["static_ms"] = median_scrape(f"{static.line['base_url']}/metrics", 5 * scrapes)
    node_exporter = binary("prometheus-node-exporter", "node_exporter")
    if node_exporter:
        with tempfile.TemporaryDirectory() as directory:
            Path(directory, "audience.prom").write_text(body)
            port = free_port()
            child = Child(
                [
                    node_exporter, "--collector.disable-defaults", "--collector.textfile",
                    f"--collector.textfile.directory={directory}", f"--web.listen-address=127.0.0.1:{port}",
                ],
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            with started([child]):
                url = f"http://127.0.0.1:{port}/metrics"
                wait_until(lambda: reachable(url), 30, "node_exporter did not start")
                figures["node_exporter_ms"] = median_scrape(url, scrapes)
    pushgateway = binary("prometheus-pushgateway", "pushgateway")
    if pushgateway:
        port = free_port()
        child = Child([pushgateway, f"--web.listen-address=127.0.0.1:{port}"], stderr=subprocess.DEVNULL)
        with started([child]):
            url = f"http://127.0.0.1:{port}/metrics"
            wait_until(lambda: reachable(url), 30, "pushgateway did not start")
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            conn.request("PUT", "/metrics/job/scale", body=body.encode())
            conn.getresponse().read()
            figures["pushgateway_ms"] = median_scrape(url, scrapes)
    return figures


def reachable(url: str) -> bool:
    try:
        median_scrape(url, 1)
    except OSError:
        return False
    return True


# --- the table -----------------------------------------------------------------------------------


def cell(value: float, digits: int = 1) -> str:
    return "-" if value != value else f"{value:.{digits}f}"


def print_table(rows: list[dict[str, Any]], scrape: dict[str, float] | None, anchors: dict[str, float | None]) -> None:
    print(
        "\n| scenario | polls | poll s first → last | longest /-/healthy ms: first poll / last poll / all "
        "| ticker late ms: wall / loop CPU / longest GC | RSS MB after first → last poll | peak RSS MB | other |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        scenario: Scenario = row["scenario"]
        over = max(row["healthy_all"], row["late_all"]) > STALL_BAR_MS
        growth = (row["rss_last"] / row["rss_first"] - 1) * 100
        print(
            f"| {scenario.description} | {row['polls']}{'' if row['ok'] else ' (failed)'} "
            f"| {row['first_s']:.2f} → {row['last_s']:.2f} "
            f"| {cell(row['healthy_first'])} / {cell(row['healthy_last'])} / {cell(row['healthy_all'])} "
            f"| {cell(row['late_all'])} / {cell(row['busy_all'])} / {cell(row['gc_all'])} "
            f"| {row['rss_first']:.0f} → {row['rss_last']:.0f} ({growth:+.0f} %) "
            f"| {row['peak']:.0f} | longest /metrics scrape (every {SCRAPE_EVERY:g} s, Prometheus's headers) "
            f"{cell(row['scrape_all'])} ms{'; over the 20 ms bar' if over else ''} |"
        )
    if scrape is not None:
        text = scrape["plain_text_ms"] / scrape["text_ms"]
        openmetrics = scrape["plain_openmetrics_ms"] / scrape["openmetrics_ms"]
        print(
            f"| scrape, 100k series: ours over HTTP (median) vs a plain prometheus_client registry | | | | | | "
            f"| text {scrape['text_ms']:.1f} ms vs {scrape['plain_text_ms']:.0f} ms = {text:.0f}x; "
            f"OpenMetrics (Prometheus's Accept, gzip) {scrape['openmetrics_ms']:.1f} ms vs "
            f"{scrape['plain_openmetrics_ms']:.0f} ms = {openmetrics:.0f}x |"
        )
    for name, key in (("node_exporter textfile collector", "node_exporter_ms"), ("pushgateway", "pushgateway_ms")):
        if key not in anchors:
            continue
        value = anchors[key]
        figure = f"{value:.0f} ms a scrape (median)" if value is not None else "not installed: skipped"
        print(f"| anchor: {name}, 100k series | | | | | | | {figure} |")
    if "static_ms" in anchors:
        print(
            "| floor: a static body of the same size (text, 100k series) served by aiohttp | | | | | | "
            f"| {anchors['static_ms']:.1f} ms a scrape (median) |"
        )


def run_state_bench(streams: int) -> dict[str, Any] | None:
    """bench/state_bench.py's 30 simulated days of a Streams Charts source, when present."""
    if not (ROOT / "bench" / "state_bench.py").exists():
        return None
    sys.path.insert(0, str(ROOT / "bench"))
    import state_bench

    return state_bench.run(streams)


def print_state_row(figures: dict[str, Any]) -> None:
    first, last = figures["first"], figures["last"]
    print(
        f"| Streams Charts {figures['streams'] // 1000}k streams, 30 simulated days, a poll an hour "
        f"(bench/state_bench.py, in process) | {figures['cycles']} "
        f"| {first['poll_s']:.2f} → {last['poll_s']:.2f} | | loop late during the poll: "
        f"{first['poll_stall_ms']:.1f} → {last['poll_stall_ms']:.1f}; while the state is encoded and written: "
        f"{first['write_stall_ms']:.1f} → {last['write_stall_ms']:.1f} | | "
        f"| reserve, all units {first['reserve_ms']:.1f} → {last['reserve_ms']:.1f} ms; "
        f"state file {first['file_mb']:.2f} → {last['file_mb']:.2f} MB; "
        f"{figures['ledger_entries']} ledger entries |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller accounts and fewer polls (about two minutes)")
    parser.add_argument(
        "--only", help="comma-separated names: scenarios (gcore-100k, ...), scrape, state (default: all)"
    )
    parser.add_argument("--scrapes", type=int, default=None, help="scrapes per variant for the scrape rows")
    parser.add_argument("--reports", type=Path, help="keep each scenario's raw JSON lines in this directory")
    parser.add_argument("--role", choices=["exporter", "prober", "simulator"], help=argparse.SUPPRESS)
    parser.add_argument("--report", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=0, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.role == "exporter":
        sys.exit(run_exporter(args.report, [arg for arg in rest if arg != "--"]))
    if args.role == "prober":
        run_prober(args.url, args.report)
        return
    if args.role == "simulator":
        asyncio.run(run_simulator(args.kind, args.size))
        return
    chosen = set(args.only.split(",")) if args.only else None
    rows = []
    for scenario in scenarios(args.quick):
        if chosen is None or scenario.name in chosen:
            print(f"{scenario.name}: {scenario.description} ...", file=sys.stderr, flush=True)
            rows.append(run_scenario(scenario, timeout=900, keep=args.reports))
    scrape, anchors = None, {}
    if chosen is None or "scrape" in chosen:
        scrapes = args.scrapes or (10 if args.quick else 200)
        print("scrape: 100k series, ours vs a plain registry and the anchors ...", file=sys.stderr, flush=True)
        try:
            scrape = measure_scrape_ratios(100_000, scrapes)
            anchors = measure_anchors(100_000, min(scrapes, 10))
        except Exception as error:  # the scenario rows are still worth printing
            print(f"scrape rows failed: {error!r}", file=sys.stderr)
    state = None
    if chosen is None or "state" in chosen:
        print("state: 30 simulated days of Streams Charts ...", file=sys.stderr, flush=True)
        try:
            state = run_state_bench(2_000 if args.quick else 10_000)
        except Exception as error:  # the other rows are still worth printing
            print(f"state row failed: {error!r}", file=sys.stderr)
    print(f"\nmachine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    print_table(rows, scrape, anchors)
    if state is not None:
        print_state_row(state)


if __name__ == "__main__":
    main()
