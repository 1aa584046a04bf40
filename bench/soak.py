"""Soak: a real exporter process polls every vendor simulator at a short interval while this
process scrapes /metrics 50 times a second, for a given duration.

    python bench/soak.py --duration 600            # the 10-minute soak
    python bench/soak.py --duration 60 --faults    # a minute, with vendor faults cycling

Every simulator runs here, on loopback, with its demo sources (interval shortened to
`--interval`); the exporter runs as its own process so its RSS is its own. Scrapes follow a fixed
timetable (not back to back) and alternate between the text format, OpenMetrics and gzip, so
every path of the scrape handler is exercised. With `--faults`, every `--fault-every` seconds
each simulator switches to the next fault (500, hang past the timeout, 429 with Retry-After,
HTML, drifted shape, dropped connection, none), so the failure paths run too.

Prints scrapes served, errors, scrape latency (median, p99, max), vendor requests by code and
the exporter's RSS at the start (once ready) and at the end, every minute and at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from exporter.demo import start_simulators  # noqa: E402
from exporter.demo.faults import FAULT_PATH  # noqa: E402

FAULT_CYCLE: list[dict[str, Any]] = [
    {"status": 500},
    {"delay": 5},
    {"status": 429, "retry_after": "3"},
    {"status": 200, "body": "<html>maintenance</html>"},
    {"drift": "wrong_types"},
    {"close": True},
    {},
]
ACCEPTS = [
    {},
    {"Accept": "application/openmetrics-text; version=1.0.0"},
    {"Accept-Encoding": "gzip"},
    {"Accept": "application/openmetrics-text; version=1.0.0", "Accept-Encoding": "gzip"},
]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request_codes(body: str) -> Counter[str]:
    codes: Counter[str] = Counter()
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == "livestream_exporter_requests_total":
                codes[sample.labels["code"]] += int(sample.value)
    return codes


class Scraper:
    def __init__(self, url: str) -> None:
        self.url = url
        self.served = 0
        self.errors: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.late = 0

    async def one(self, session: aiohttp.ClientSession, headers: dict[str, str]) -> None:
        started = time.perf_counter()
        try:
            async with session.get(self.url, headers=headers, auto_decompress=False) as response:
                body = await response.read()
            if response.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if response.status != 200 or b"livestream_exporter_build_info" not in body:
                self.errors[f"HTTP {response.status}"] += 1
                return
            self.served += 1
            self.latencies.append(time.perf_counter() - started)
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            self.errors[type(error).__name__] += 1

    async def run(self, rate: float, until: float) -> None:
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            pending: set[asyncio.Task[None]] = set()
            start = time.monotonic()
            tick = 0
            while (now := time.monotonic()) < until:
                due = start + tick / rate
                if due > now:
                    await asyncio.sleep(due - now)
                elif now - due > 1 / rate:
                    self.late += 1
                task = asyncio.create_task(self.one(session, ACCEPTS[tick % len(ACCEPTS)]))
                pending.add(task)
                task.add_done_callback(pending.discard)
                tick += 1
            await asyncio.gather(*pending)

    def summary(self) -> str:
        if not self.latencies:
            return f"scrapes served 0, errors {sum(self.errors.values())} {dict(self.errors)}"
        ordered = sorted(self.latencies)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        total = self.served + sum(self.errors.values())
        return (
            f"scrapes served {self.served}, errors {sum(self.errors.values())} "
            f"({100 * sum(self.errors.values()) / max(total, 1):.3f}%) {dict(self.errors) or ''}, "
            f"late ticks {self.late}; latency median {1000 * statistics.median(ordered):.1f} ms, "
            f"p99 {1000 * p99:.1f} ms, max {1000 * ordered[-1]:.1f} ms"
        )


async def cycle_faults(base_urls: list[str], every: float, until: float) -> None:
    async with aiohttp.ClientSession() as session:
        step = 0
        while time.monotonic() + every < until:
            await asyncio.sleep(every)
            fault = FAULT_CYCLE[step % len(FAULT_CYCLE)]
            for base_url in base_urls:
                async with session.post(base_url + FAULT_PATH, json=fault) as response:
                    await response.read()
            step += 1
        for base_url in base_urls:
            async with session.post(base_url + FAULT_PATH, json={}) as response:
                await response.read()


async def soak(args: argparse.Namespace) -> int:
    running = await start_simulators()
    workdir = Path(tempfile.mkdtemp(prefix="livestream-soak-"))
    sources = [{**source, "interval": f"{int(args.interval * 1000)}ms"} for source in running.sources]
    config = workdir / "config.yaml"
    config.write_text(
        yaml.safe_dump({"global": {"timeout": "2s", "state_dir": str(workdir / "state")}, "sources": sources})
    )
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    log = (workdir / "exporter.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exporter",
            "--config",
            str(config),
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 30
            while True:
                try:
                    async with session.get(base + "/-/ready") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    print(f"exporter not ready; log: {workdir / 'exporter.log'}", file=sys.stderr)
                    return 1
                await asyncio.sleep(0.2)
        rss_start = rss_mib(proc.pid)
        print(
            f"soak: {len(sources)} sources ({', '.join(sorted(running.base_urls))}) polled every {args.interval:g} s, "
            f"scraping {args.rate:g}/s for {args.duration:g} s{', faults cycling' if args.faults else ''}; "
            f"exporter RSS at start {rss_start:.1f} MiB",
            flush=True,
        )
        scraper = Scraper(base + "/metrics")
        started = time.monotonic()
        until = started + args.duration
        jobs = [asyncio.create_task(scraper.run(args.rate, until))]
        if args.faults:
            jobs.append(asyncio.create_task(cycle_faults(list(running.base_urls.values()), args.fault_every, until)))
        while time.monotonic() < until - 1:
            await asyncio.sleep(min(60.0, until - time.monotonic() - 0.5))
            print(
                f"  {time.monotonic() - started:5.0f} s: served {scraper.served}, "
                f"errors {sum(scraper.errors.values())}, RSS {rss_mib(proc.pid):.1f} MiB",
                flush=True,
            )
        await asyncio.gather(*jobs)
        rss_end = rss_mib(proc.pid)
        async with aiohttp.ClientSession() as session, session.get(base + "/metrics") as response:
            codes = request_codes(await response.text())
        print(scraper.summary())
        print(f"vendor requests by code: {dict(sorted(codes.items()))} ({sum(codes.values())} in total)")
        print(
            f"exporter RSS: start {rss_start:.1f} MiB, end {rss_end:.1f} MiB "
            f"({100 * (rss_end - rss_start) / rss_start:+.1f}%)"
        )
        return 0 if not scraper.errors else 1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        await running.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds to run (default 600)")
    parser.add_argument("--interval", type=float, default=1.0, help="poll interval of every source, seconds")
    parser.add_argument("--rate", type=float, default=50.0, help="scrapes per second")
    parser.add_argument("--faults", action="store_true", help="cycle vendor faults on every simulator")
    parser.add_argument("--fault-every", type=float, default=20.0, help="seconds between fault changes")
    return asyncio.run(soak(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
