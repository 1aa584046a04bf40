"""Command line: flags in Prometheus style, and the process lifecycle.

`livestream-exporter --demo` needs nothing else: it starts every vendor's simulator on loopback
and polls it. `--check-config` and `--once` are for CI pipelines and first-time setup.

SIGTERM and SIGINT stop the process (in-flight vendor requests are cancelled); SIGHUP and
`POST /-/reload` re-read the config: a bad one is refused, logged and the running one kept.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from exporter import __version__
from exporter.config import Config, ConfigError, load_config, parse_config, with_sources
from exporter.demo import RunningSimulators, simulators, start_simulators
from exporter.demo.faults import FAULT_PATH
from exporter.families import AUDIENCE_FAMILIES
from exporter.history import backfill
from exporter.landing import LandingContext, exposed
from exporter.logs import LEVELS, Redactor, setup_logging
from exporter.memory import start_housekeeping
from exporter.metrics import AudienceStore, ExporterMetrics, Exposition
from exporter.probe import health_probe
from exporter.providers import providers
from exporter.scheduler import Scheduler
from exporter.server import HTTPServer
from exporter.sharding import ShardError, budget_summary, requested, resolve
from exporter.web import LANDING_KEY, build_app
from exporter.webconfig import WebSecurity, load_web_config

log = logging.getLogger("exporter")

DEFAULT_LISTEN = ":9877"
CONFIG_ENV = "LIVESTREAM_EXPORTER_CONFIG"
SHUTDOWN_GRACE = 1.0
"""Seconds a scrape in progress may take to finish once the process is told to stop."""


class HelpFormatter(argparse.HelpFormatter):
    """Each flag's default said once: the help's own `(default: ...)` when it explains one, else
    the value argparse holds, and nothing for a flag that is off or unset by default."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_text = action.help or ""
        if "(default:" in help_text or action.default in (None, False, argparse.SUPPRESS):
            return help_text
        return f"{help_text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="livestream-exporter",
        description="Prometheus exporter for live-stream audience figures across streaming vendors.",
        formatter_class=HelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--config", metavar="PATH", help=f"YAML config file (default: ${CONFIG_ENV})")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="start built-in simulators of every vendor on loopback and poll them (no keys needed); "
        "with --config, the demo sources are added to yours",
    )
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help="address to serve /metrics and the landing page on (:PORT is every interface)",
    )
    parser.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        default="/metrics",
        metavar="PATH",
        help="path of the metrics endpoint",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="PATH",
        help="TLS and basic auth, in the Prometheus exporter-toolkit web-config format (default: none, plain HTTP)",
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the config (and that secrets are present) and exit: 0 valid, 1 invalid, one line per problem",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="poll every source once, print the exposition to stdout, exit 0 if every source succeeded, 1 otherwise",
    )
    parser.add_argument(
        "--log.level", dest="log_level", default="info", choices=list(LEVELS), help=f"log level: {', '.join(LEVELS)}"
    )
    parser.add_argument(
        "--log.format",
        dest="log_format",
        default="logfmt",
        choices=["logfmt", "json"],
        help="log line format: logfmt or json",
    )
    parser.add_argument(
        "--total-shards",
        dest="total_shards",
        metavar="N",
        help="split the streams across N replicas (default: global.total_shards, else 1)",
    )
    parser.add_argument(
        "--shard",
        metavar="I",
        help="this replica's 0-based shard of --total-shards, or auto: the host name's trailing ordinal, "
        "as in a StatefulSet (default: global.shard, else 0)",
    )
    parser.add_argument(
        "--health-probe",
        action="store_true",
        help="exit 0 if the exporter at --web.listen-address answers (any HTTP status, 401 included; TLS as "
        "--web.config.file says), else 1: the container's HEALTHCHECK",
    )
    parser.add_argument(
        "--version", action="version", version=f"livestream-exporter {__version__}", help="print the version and exit"
    )
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
    path: str | None = None
    demo_state_dir: str | None = None
    shard_flags: tuple[str | None, str | None] = (None, None)
    """`--shard` and `--total-shards` as given: they win over the config at every reload too."""

    def reread(self) -> Config:
        """The config as the file says now, with the running demo's sources added again."""
        config = combine(self.path, self.simulators, self.demo_state_dir)
        global_ = config.global_
        try:
            shard, total = requested(*self.shard_flags, global_.shard, global_.total_shards, config.path)
        except ShardError as error:
            raise ConfigError([str(error)]) from None
        return config.model_copy(update={"global_": global_.model_copy(update={"shard": shard, "total_shards": total})})


def combine(path: str | None, running: RunningSimulators | None, demo_state_dir: str | None) -> Config:
    config = load_config(path, require_sources=running is None) if path else None
    if running is None:
        assert config is not None
        return config
    demo_global = {"state_dir": demo_state_dir} if config is None and demo_state_dir else {}
    demo = parse_config({"global": demo_global, "sources": running.sources}, "<demo>", Path(tempfile.gettempdir()))
    if config is None:
        return demo
    taken = {source.name for source in config.sources}
    clashes = [source.name for source in demo.sources if source.name in taken]
    if clashes:
        raise ConfigError([f"{path}: sources: names {', '.join(clashes)} are reserved for --demo"])
    return with_sources(config, demo.sources)


async def prepare(args: argparse.Namespace) -> Setup:
    """Load the config and, with --demo, start the simulators and add their sources."""
    path = args.config or os.environ.get(CONFIG_ENV)
    if not path and not args.demo:
        raise ConfigError([f"no config: pass --config PATH, set ${CONFIG_ENV}, or run with --demo"])
    if not args.demo:
        return Setup(combine(path, None, None), None, path)
    if args.check_config:
        return Setup(combine(path, unstarted_simulators(), None), None, path)
    if path:
        load_config(path, require_sources=False)
    running = await start_simulators()
    demo_state_dir = tempfile.mkdtemp(prefix="livestream-exporter-demo-")
    try:
        config = combine(path, running, demo_state_dir)
    except ConfigError:
        await running.stop()
        raise
    for provider, base_url in running.base_urls.items():
        log.info("demo simulator", extra={"provider": provider, "url": base_url, "faults": base_url + FAULT_PATH})
    return Setup(config, running, path, demo_state_dir)


def unstarted_simulators() -> RunningSimulators:
    """The demo's sources for --check-config, which checks them without starting a simulator
    (their base URLs point nowhere)."""
    planned = RunningSimulators()
    for simulator in simulators():
        planned.sources.extend(simulator.demo_sources("http://127.0.0.1:9"))
    return planned


class Exporter:
    """Everything a running process holds, wired together."""

    def __init__(self, config: Config, redactor: Redactor) -> None:
        redactor.replace(config.secret_values())
        self.redactor = redactor
        self.store = AudienceStore(AUDIENCE_FAMILIES, config.global_.stale_after)
        self.metrics = ExporterMetrics(__version__, platform.python_version())
        self.scheduler = Scheduler(config, self.store, self.metrics, redact=redactor)
        self.exposition = Exposition(self.store, self.metrics)
        self.security: WebSecurity | None = None
        self._reloading = asyncio.Lock()

    async def reload(self, setup: Setup) -> list[str]:
        """Re-read the config (and the web config); [] when it was applied, else its problems,
        which are logged while the running config stays. The file is read and validated in a
        worker thread: a config following 30k Gcore streams and 10k Streams Charts channels
        takes 2.2 s to parse and validate, which held the loop that long on every SIGHUP."""
        async with self._reloading:
            try:
                config = await asyncio.to_thread(setup.reread)
                self.redactor.replace(sorted({*self.redactor.known, *config.secret_values()}))
                summary = await self.scheduler.reload(config)
            except ConfigError as error:
                problems = [self.redactor(line) for line in error.lines]
                for line in problems:
                    log.error("config not reloaded, keeping the running one", extra={"problem": line})
                self.metrics.config_reload_ok.set(0)
                return problems
            web_ok = self.security.refresh() if self.security is not None else True
            self.metrics.config_reload_ok.set(1 if web_ok else 0)
            log.info(
                "config reloaded",
                extra={
                    "added": ",".join(summary.added),
                    "restarted": ",".join(summary.restarted),
                    "removed": ",".join(summary.removed),
                    "unchanged": len(summary.unchanged),
                },
            )
            return [] if web_ok else ["web config not reloaded; see the log"]


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


async def serve(setup: Setup, args: argparse.Namespace, redactor: Redactor, security: WebSecurity | None) -> int:
    host, port = parse_listen_address(args.listen_address)
    exporter = Exporter(setup.config, redactor)
    exporter.security = security
    await exporter.scheduler.open()
    app = build_app(
        exporter.scheduler,
        exporter.exposition,
        args.telemetry_path,
        security=security,
        reload=lambda: exporter.reload(setup),
    )
    app[LANDING_KEY] = LandingContext(
        exposed(args.listen_address, host, security is not None), setup.simulators.base_urls if setup.simulators else {}
    )
    server = HTTPServer(
        app, host, port, ssl_context=security.ssl_context if security else None, shutdown_timeout=SHUTDOWN_GRACE
    )
    try:
        await server.start()
    except OSError as error:
        await exporter.scheduler.close()
        await server.cleanup()
        log.error("cannot listen", extra={"address": args.listen_address, "error": error.strerror or str(error)})
        return 1
    log.info(
        "listening",
        extra={
            "address": args.listen_address,
            "sources": len(exporter.scheduler.sources),
            "version": __version__,
            "tls": security is not None and security.ssl_context is not None,
        },
    )
    collectors = start_housekeeping()
    loop = asyncio.get_running_loop()
    exporter.scheduler.start()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    reloads: set[asyncio.Task[list[str]]] = set()

    def on_sighup() -> None:
        task = loop.create_task(exporter.reload(setup))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    await stop.wait()
    log.info("shutting down")
    for collector in collectors:
        collector.cancel()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.remove_signal_handler(signum)
    await server.stop()
    await exporter.scheduler.close()
    await server.cleanup()
    if security is not None:
        security.close()
    return 0


def apply_sharding(config: Config, args: argparse.Namespace) -> Config:
    """Flags over the config's `global`: the config holding the resolved shard, except that
    --check-config leaves `auto` alone (it checks the config, not this host's name)."""
    global_ = config.global_
    shard, total = requested(args.shard, args.total_shards, global_.shard, global_.total_shards, config.path)
    if not args.check_config:
        shard = resolve(shard, total).ordinal
    return config.model_copy(update={"global_": global_.model_copy(update={"shard": shard, "total_shards": total})})


async def amain(args: argparse.Namespace, redactor: Redactor) -> int:
    problems: list[str] = []
    setup: Setup | None = None
    security: WebSecurity | None = None
    try:
        setup = await prepare(args)
    except ConfigError as error:
        problems.extend(error.lines)
    if args.web_config_file:
        try:
            security = WebSecurity(load_web_config(args.web_config_file))
        except ConfigError as error:
            problems.extend(error.lines)
    if problems or setup is None:
        for line in problems:
            print(redactor(line), file=sys.stderr)
        if setup is not None and setup.simulators is not None:
            await setup.simulators.stop()
        return 1
    try:
        try:
            setup.config = apply_sharding(setup.config, args)
            setup.shard_flags = (args.shard, args.total_shards)
        except ShardError as error:
            print(str(error), file=sys.stderr)
            return 1
        if args.check_config:
            count = len(setup.config.sources)
            print(f"{setup.config.path}: OK, {count} source{'s' if count != 1 else ''}")
            total = setup.config.global_.total_shards
            if total > 1:
                known = providers()
                print(budget_summary(total, [known[s.provider](s) for s in setup.config.sources]))
            if security is not None:
                print(f"{args.web_config_file}: OK")
            return 0
        if args.once:
            return await run_once(setup, redactor)
        return await serve(setup, args, redactor, security)
    finally:
        if setup.simulators is not None:
            await setup.simulators.stop()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["backfill"]:
        return backfill.main(argv[1:])
    args = build_parser().parse_args(argv)
    redactor = Redactor()
    setup_logging(args.log_level, args.log_format, redactor)
    try:
        parse_listen_address(args.listen_address)
    except ValueError as error:
        print(str(error), file=sys.stderr)
        return 1
    if args.health_probe:
        return health_probe(*parse_listen_address(args.listen_address), args.web_config_file)
    return asyncio.run(amain(args, redactor))
