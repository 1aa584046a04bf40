"""Command line: flags in Prometheus style, and the process lifecycle.

`livestream-exporter --demo` needs nothing else: it starts every vendor's simulator on loopback
and polls it. `--check-config` and `--once` are for CI pipelines and first-time setup.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import platform
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from exporter import __version__
from exporter.config import Config, ConfigError, load_config, parse_config
from exporter.demo import RunningSimulators, start_simulators
from exporter.logs import LEVELS, Redactor, setup_logging
from exporter.metrics import CONTRACT_FAMILIES, AudienceStore, ExporterMetrics, Exposition
from exporter.providers import providers
from exporter.scheduler import Scheduler
from exporter.web import build_app

log = logging.getLogger("exporter")

DEFAULT_LISTEN = ":9877"
CONFIG_ENV = "LIVESTREAM_EXPORTER_CONFIG"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="livestream-exporter",
        description="Prometheus exporter for live-stream audience figures across streaming vendors.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--config", metavar="PATH", help=f"YAML config file (fallback: ${CONFIG_ENV})")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="start built-in simulators of every vendor on loopback and poll them (no keys needed)",
    )
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help="address to serve /metrics and the landing page on",
    )
    parser.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        default="/metrics",
        metavar="PATH",
        help="path of the metrics endpoint",
    )
    parser.add_argument(
        "--check-config", action="store_true", help="validate the config and exit (0 valid, 1 not)"
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="poll every source once, print the exposition, exit 0 if all succeeded",
    )
    parser.add_argument(
        "--log.level", dest="log_level", default="info", choices=list(LEVELS), help="log level"
    )
    parser.add_argument(
        "--log.format",
        dest="log_format",
        default="logfmt",
        choices=["logfmt", "json"],
        help="log line format",
    )
    parser.add_argument("--version", action="version", version=f"livestream-exporter {__version__}")
    return parser


def parse_listen_address(value: str) -> tuple[str | None, int]:
    """`:9877`, `127.0.0.1:9877` or `[::1]:9877` to (host or None for every interface, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--web.listen-address: {value!r} is not HOST:PORT")
    host = host.strip("[]")
    return (host or None), int(port)


@dataclass
class Setup:
    config: Config
    simulators: RunningSimulators | None


async def prepare(args: argparse.Namespace) -> Setup:
    """Load the config and, with --demo, start the simulators and add their sources."""
    path = args.config or os.environ.get(CONFIG_ENV)
    if not path and not args.demo:
        raise ConfigError([f"no config: pass --config PATH, set ${CONFIG_ENV}, or run with --demo"])
    config = load_config(path, require_sources=not args.demo) if path else None
    if not args.demo:
        assert config is not None
        return Setup(config, None)
    running = await start_simulators()
    demo_dir = Path(tempfile.gettempdir())
    demo = parse_config({"sources": running.sources}, "<demo>", demo_dir)
    if config is None:
        demo.global_ = demo.global_.model_copy(
            update={"state_dir": tempfile.mkdtemp(prefix="livestream-exporter-demo-")}
        )
        return Setup(demo, running)
    taken = {source.name for source in config.sources}
    clashes = [source.name for source in demo.sources if source.name in taken]
    if clashes:
        await running.stop()
        raise ConfigError([f"{path}: sources: names {', '.join(clashes)} are reserved for --demo"])
    config.sources.extend(demo.sources)
    return Setup(config, running)


def all_families() -> list:
    families = list(CONTRACT_FAMILIES)
    for provider in providers().values():
        families.extend(provider.families)
    return families


class Exporter:
    """Everything a running process holds, wired together."""

    def __init__(self, config: Config, redactor: Redactor) -> None:
        redactor.replace(config.secret_values())
        self.store = AudienceStore(all_families(), config.global_.stale_after)
        self.metrics = ExporterMetrics(__version__, platform.python_version())
        self.scheduler = Scheduler(config, self.store, self.metrics)
        self.exposition = Exposition(self.store, self.metrics)


async def run_once(setup: Setup, redactor: Redactor) -> int:
    exporter = Exporter(setup.config, redactor)
    await exporter.scheduler.open()
    try:
        ok = await exporter.scheduler.poll_all_once()
    finally:
        await exporter.scheduler.close()
    sys.stdout.buffer.write(exporter.exposition.body(openmetrics=False))
    sys.stdout.flush()
    return 0 if ok else 1


async def serve(setup: Setup, args: argparse.Namespace, redactor: Redactor) -> int:
    host, port = parse_listen_address(args.listen_address)
    exporter = Exporter(setup.config, redactor)
    await exporter.scheduler.open()
    app = build_app(exporter.scheduler, exporter.exposition, args.telemetry_path)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as error:
        await exporter.scheduler.close()
        log.error(
            "cannot listen", extra={"address": args.listen_address, "error": error.strerror or str(error)}
        )
        return 1
    log.info(
        "listening",
        extra={
            "address": args.listen_address,
            "sources": len(exporter.scheduler.sources),
            "version": __version__,
        },
    )
    # What is loaded by now lives as long as the process: freezing it keeps every later full
    # garbage collection from walking it (a stall of tens of ms per collection otherwise).
    gc.freeze()
    exporter.scheduler.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("shutting down")
    await exporter.scheduler.close()
    await runner.cleanup()
    return 0


async def amain(args: argparse.Namespace, redactor: Redactor) -> int:
    try:
        setup = await prepare(args)
    except ConfigError as error:
        for line in error.lines:
            print(redactor(line), file=sys.stderr)
        return 1
    try:
        if args.check_config:
            count = len(setup.config.sources)
            print(f"{setup.config.path}: OK, {count} source{'s' if count != 1 else ''}")
            return 0
        if args.once:
            return await run_once(setup, redactor)
        return await serve(setup, args, redactor)
    finally:
        if setup.simulators is not None:
            await setup.simulators.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    redactor = Redactor()
    setup_logging(args.log_level, args.log_format, redactor)
    try:
        parse_listen_address(args.listen_address)
    except ValueError as error:
        print(str(error), file=sys.stderr)
        return 1
    return asyncio.run(amain(args, redactor))
