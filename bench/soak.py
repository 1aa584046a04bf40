"""Soak: a real exporter process polls every vendor simulator at a short interval while this
process scrapes /metrics 50 times a second, for a given time.

    python bench/soak.py                          # the 10-minute soak
    python bench/soak.py --minutes 1 --faults     # a minute, with vendor faults cycling
    python bench/soak.py --hostile                # 10 minutes of everything issue 15 throws

Every simulator runs here, on loopback, with its demo sources (interval shortened to
`--interval`); the exporter runs as its own process so its RSS is its own. Scrapes follow a fixed
timetable (not back to back) and alternate between the text format, OpenMetrics and gzip, so
every path of the scrape handler is exercised. With `--faults`, every `--fault-every` seconds
each simulator switches to the next fault (500, hang past the timeout, 429 with Retry-After,
HTML, drifted shape, dropped connection, none), so the failure paths run too.

`--hostile` adds, on top of `--faults`: the hostile vendor answers (Retry-After of two hours, a
year or unparsable, JSON nested 100k deep, a lone surrogate, an 8 MB body), a web config with
basic auth (the scraper logs in), wrong-password clients hammering, and waves of connection
floods (idle connections and slow headers) against the exporter.

Prints scrapes served, errors, scrape latency (median, p99, max), the longest stall (the longest
time without a scrape answered), vendor requests by code, the exporter's RSS at the start (once
ready), at the end and its peak, every minute and at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gzip
import itertools
import os
import resource
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt
import yaml
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from exporter.config import ConfigError, parse_config  # noqa: E402
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
HOSTILE_FAULTS: list[dict[str, Any]] = [
    {"status": 429, "retry_after": "7200"},
    {"status": 429, "retry_after": "Fri, 31 Dec 9999 23:59:59 GMT"},
    {"status": 429, "retry_after": "\u00b2"},
    {"status": 200, "body": "[" * 100_000, "content_type": "application/json"},
    {"status": 200, "body": '{"data": "\\ud800", "result": "\\ud800"}', "content_type": "application/json"},
    {"status": 200, "body": '{"data": [' + "0," * 4_000_000 + "0]}", "content_type": "application/json"},
    {},
]
FLOOD_IDLE = 1500
FLOOD_SLOW_HEADERS = 200
WRONG_PASSWORD_CLIENTS = 50
USER = "prometheus"
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


def basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{USER}:{password}".encode()).decode()}


class Scraper:
    def __init__(self, url: str, auth: dict[str, str]) -> None:
        self.url = url
        self.auth = auth
        self.served = 0
        self.errors: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.late = 0
        self.last_answer = time.perf_counter()
        self.longest_stall = 0.0
        self.phase = "no fault"
        self.slowest_by_phase: dict[str, float] = {}

    async def one(self, session: aiohttp.ClientSession, headers: dict[str, str]) -> None:
        started = time.perf_counter()
        try:
            async with session.get(self.url, headers={**headers, **self.auth}, auto_decompress=False) as response:
                body = await response.read()
            if response.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if response.status != 200 or b"livestream_exporter_build_info" not in body:
                self.errors[f"HTTP {response.status}"] += 1
                return
            self.served += 1
            now = time.perf_counter()
            self.latencies.append(now - started)
            self.slowest_by_phase[self.phase] = max(self.slowest_by_phase.get(self.phase, 0.0), now - started)
            self.longest_stall = max(self.longest_stall, now - self.last_answer)
            self.last_answer = now
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
            f"p99 {1000 * p99:.1f} ms, max {1000 * ordered[-1]:.1f} ms; "
            f"longest stall {1000 * self.longest_stall:.0f} ms"
        )


def fault_name(fault: dict[str, Any]) -> str:
    if not fault:
        return "no fault"
    return ", ".join(f"{key}={str(value)[:24]}" for key, value in fault.items() if key != "content_type")


async def cycle_faults(
    base_urls: list[str], faults: list[dict[str, Any]], every: float, until: float, scraper: Scraper
) -> None:
    async with aiohttp.ClientSession() as session:
        step = 0
        while time.monotonic() + every < until:
            await asyncio.sleep(every)
            fault = faults[step % len(faults)]
            scraper.phase = fault_name(fault)
            for base_url in base_urls:
                async with session.post(base_url + FAULT_PATH, json=fault) as response:
                    await response.read()
            step += 1
        for base_url in base_urls:
            async with session.post(base_url + FAULT_PATH, json={}) as response:
                await response.read()


class Hostile:
    """The traffic an attacker sends the exporter itself, with what came of it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.flood_opened = 0
        self.flood_closed_by_exporter = 0
        self.wrong_logins: Counter[str] = Counter()

    async def flood(self, every: float, until: float) -> None:
        """Waves of idle connections and slow headers, each held for `every` seconds."""
        loop = asyncio.get_running_loop()
        while time.monotonic() + every < until:
            opened = []
            for index in range(FLOOD_IDLE + FLOOD_SLOW_HEADERS):
                sock = socket.socket()
                sock.setblocking(False)
                with contextlib.suppress(OSError):
                    await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", self.port)), 1)
                    if index >= FLOOD_IDLE:
                        await loop.sock_sendall(sock, b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                opened.append(sock)
            self.flood_opened += len(opened)
            await asyncio.sleep(every)
            for sock in opened:
                try:
                    self.flood_closed_by_exporter += sock.recv(1, socket.MSG_PEEK) == b""
                except BlockingIOError:
                    pass
                except OSError:
                    self.flood_closed_by_exporter += 1
                sock.close()

    async def wrong_passwords(self, until: float) -> None:
        passwords = (f"wrong-{n}" for n in itertools.count())
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:

            async def client() -> None:
                while time.monotonic() < until:
                    try:
                        async with session.get(self.url, headers=basic(next(passwords))) as response:
                            await response.read()
                            self.wrong_logins[str(response.status)] += 1
                    except (aiohttp.ClientError, TimeoutError) as error:
                        self.wrong_logins[type(error).__name__] += 1
                        await asyncio.sleep(0.1)

            await asyncio.gather(*(client() for _ in range(WRONG_PASSWORD_CLIENTS)))

    def summary(self) -> str:
        return (
            f"flood connections opened {self.flood_opened}, closed by the exporter before the wave ended "
            f"{self.flood_closed_by_exporter}; wrong-password answers {dict(sorted(self.wrong_logins.items()))}"
        )


class PeakRSS:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_mib(pid)

    async def watch(self, until: float) -> None:
        while time.monotonic() < until:
            with contextlib.suppress(OSError, RuntimeError):
                self.peak = max(self.peak, rss_mib(self.pid))
            await asyncio.sleep(0.25)


def write_web_config(workdir: Path, password: str) -> Path:
    path = workdir / "web.yml"
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(10)).decode()
    path.write_text(yaml.safe_dump({"basic_auth_users": {USER: hashed}}))
    return path


def raise_open_files_limit() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def shortened(sources: list[dict[str, Any]], interval: float, workdir: Path) -> list[dict[str, Any]]:
    """The demo sources polled every `interval` seconds, except those the config check refuses
    at that pace (a vendor's request budget): they keep their demo interval."""
    keep: set[str] = set()
    while True:
        candidate = [
            source if source["name"] in keep else {**source, "interval": f"{int(interval * 1000)}ms"}
            for source in sources
        ]
        try:
            parse_config({"sources": candidate}, "<soak>", workdir)
            return candidate
        except ConfigError as error:
            named = "\n".join(error.lines)
            refused = {source["name"] for source in sources if source["name"] in named}
            if refused <= keep:
                raise
            keep |= refused


async def soak(args: argparse.Namespace) -> int:
    running = await start_simulators()
    workdir = Path(tempfile.mkdtemp(prefix="livestream-soak-"))
    sources = shortened(running.sources, args.interval, workdir)
    config = workdir / "config.yaml"
    config.write_text(
        yaml.safe_dump({"global": {"timeout": "2s", "state_dir": str(workdir / "state")}, "sources": sources})
    )
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    log = (workdir / "exporter.log").open("wb")
    password = secrets.token_urlsafe(16)
    auth = basic(password) if args.hostile else {}
    web_config = [f"--web.config.file={write_web_config(workdir, password)}"] if args.hostile else []
    if args.hostile:
        raise_open_files_limit()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exporter",
            "--config",
            str(config),
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
            *web_config,
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
                    async with session.get(base + "/-/ready", headers=auth) as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    print(f"exporter not ready; log: {workdir / 'exporter.log'}", file=sys.stderr)
                    return 1
                await asyncio.sleep(0.2)
        rss_start = rss_mib(proc.pid)
        mode = ", hostile" if args.hostile else ", faults cycling" if args.faults else ""
        print(
            f"soak: {len(sources)} sources ({', '.join(sorted(running.base_urls))}) polled every {args.interval:g} s, "
            f"scraping {args.rate:g}/s for {args.minutes:g} min{mode}; exporter RSS at start {rss_start:.1f} MiB",
            flush=True,
        )
        scraper = Scraper(base + "/metrics", auth)
        peak = PeakRSS(proc.pid)
        hostile = Hostile(port)
        started = time.monotonic()
        until = started + 60 * args.minutes
        jobs = [asyncio.create_task(scraper.run(args.rate, until)), asyncio.create_task(peak.watch(until))]
        if args.faults or args.hostile:
            faults = FAULT_CYCLE + HOSTILE_FAULTS if args.hostile else FAULT_CYCLE
            base_urls = list(running.base_urls.values())
            jobs.append(asyncio.create_task(cycle_faults(base_urls, faults, args.fault_every, until, scraper)))
        if args.hostile:
            jobs.append(asyncio.create_task(hostile.flood(args.fault_every, until)))
            jobs.append(asyncio.create_task(hostile.wrong_passwords(until)))
        while time.monotonic() < until - 1:
            await asyncio.sleep(min(60.0, until - time.monotonic() - 0.5))
            print(
                f"  {time.monotonic() - started:5.0f} s: served {scraper.served}, "
                f"errors {sum(scraper.errors.values())}, RSS {rss_mib(proc.pid):.1f} MiB (peak {peak.peak:.1f})",
                flush=True,
            )
        await asyncio.gather(*jobs)
        rss_end = rss_mib(proc.pid)
        async with aiohttp.ClientSession() as session, session.get(base + "/metrics", headers=auth) as response:
            codes = request_codes(await response.text())
        print(scraper.summary())
        if args.faults or args.hostile:
            slowest = sorted(scraper.slowest_by_phase.items(), key=lambda item: -item[1])
            print("slowest scrape by fault: " + "; ".join(f"{name}: {1000 * took:.0f} ms" for name, took in slowest))
        if args.hostile:
            print(hostile.summary())
        print(f"vendor requests by code: {dict(sorted(codes.items()))} ({sum(codes.values())} in total)")
        print(
            f"exporter RSS: start {rss_start:.1f} MiB, end {rss_end:.1f} MiB "
            f"({100 * (rss_end - rss_start) / rss_start:+.1f}%), peak {peak.peak:.1f} MiB"
        )
        print(f"exporter log: {(workdir / 'exporter.log').stat().st_size} bytes ({workdir / 'exporter.log'})")
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
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes to run (default 10)")
    parser.add_argument("--interval", type=float, default=1.0, help="poll interval of every source, seconds")
    parser.add_argument("--rate", type=float, default=50.0, help="scrapes per second")
    parser.add_argument("--faults", action="store_true", help="cycle vendor faults on every simulator")
    parser.add_argument("--fault-every", type=float, default=20.0, help="seconds between fault changes")
    parser.add_argument(
        "--hostile",
        action="store_true",
        help="faults plus hostile vendor answers, basic auth with wrong-password clients and connection floods",
    )
    return asyncio.run(soak(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
