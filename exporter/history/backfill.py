"""`livestream-exporter backfill`: the vendors' own history for a time range, as an OpenMetrics
file that `promtool tsdb create-blocks-from openmetrics` turns into blocks (docs/history.md).
Exit 0 when every selected source delivered its range, 1 otherwise.

Only vendors that keep a time series take part; the others are named on stderr as skipped and
never asked (Streams Charts charges credits and keeps no series; Cloudflare keeps day totals).
Requests go through the same fetcher and rate limits as live polling, so LLS's 100 per minute
and 1000 per hour hold within this run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from exporter import __version__
from exporter.config import Config, ConfigError, load_config
from exporter.families import AUDIENCE_FAMILIES
from exporter.fetch import LargeAnswerTurn, SourceFetcher
from exporter.history import openmetrics
from exporter.history.series import SeriesSet
from exporter.metrics import SourceIdentity
from exporter.poll import Answer, RateLimit, SignedHeaders
from exporter.providers import providers
from exporter.providers.base import Provider
from exporter.ratelimit import SlidingWindowLimiter
from exporter.settings import parse_duration
from exporter.sources import DEFAULT_RATE_LIMIT_PAUSE

TIME_HELP = "RFC 3339 (2026-11-29T10:00:00Z), `now`, or a negative duration from now (-6h, -30m)"
RATE_LIMIT_RETRIES = 3
"""How often a request the vendor refused with 429 is sent again before its unit counts as failed."""
WINDOW_MARGIN = 2.0
"""Seconds added to each rate window: the limiter counts a request when it leaves, the vendor when
it arrives, and a slow first request would otherwise let the window's last one in too early (429)."""
_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)=(.*)", re.DOTALL)


def parse_time(text: str, now: float) -> float:
    """TIME_HELP to Unix seconds; ValueError with a message naming the accepted forms."""
    if text == "now":
        return now
    if text.startswith("-"):
        try:
            return now - parse_duration(text[1:])
        except ValueError:
            pass
    else:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed.timestamp()
    raise ValueError(f"{text!r}: must be {TIME_HELP}")


def parse_label(text: str) -> tuple[str, str]:
    match = _LABEL.fullmatch(text)
    if match is None or match.group(1).startswith("__") or match.group(1) in ("source", "provider"):
        raise argparse.ArgumentTypeError(f"{text!r}: must be NAME=VALUE with a label name other than source/provider")
    return match.group(1), match.group(2)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="livestream-exporter backfill",
        description="Write the vendors' history for a time range as OpenMetrics for promtool.",
        allow_abbrev=False,
    )
    parser.add_argument("--config", metavar="PATH", required=True, help="YAML config file")
    parser.add_argument("--from", dest="start", metavar="TIME", required=True, help=TIME_HELP)
    parser.add_argument("--to", dest="end", metavar="TIME", required=True, help=TIME_HELP)
    parser.add_argument(
        "--source", dest="sources", metavar="NAME", action="append", default=[], help="only this source (repeatable)"
    )
    parser.add_argument(
        "--label",
        dest="labels",
        metavar="NAME=VALUE",
        action="append",
        type=parse_label,
        default=[],
        help="add a label to every series (repeatable; default: global.history.labels)",
    )
    parser.add_argument("--output", metavar="PATH", required=True, help="the OpenMetrics file to write")
    return parser


def join_time_values(argv: list[str]) -> list[str]:
    """`--from -3h` as `--from=-3h`: argparse would read a value starting with `-` as a flag."""
    joined: list[str] = []
    waiting: str | None = None
    for arg in argv:
        if waiting is not None:
            joined.append(f"{waiting}={arg}")
            waiting = None
        elif arg in ("--from", "--to"):
            waiting = arg
        else:
            joined.append(arg)
    if waiting is not None:
        joined.append(waiting)
    return joined


class _Requests:
    """The fetcher's bookkeeping, reduced to a count for the closing summary, and a note when
    the run waits for a rate budget (so a long backfill says why it is slow)."""

    def __init__(self) -> None:
        self.sent = 0
        self.said_until = 0.0
        """When the last wait announced ends: units waiting for the same window say it once."""

    def request_done(self, endpoint: str, code: str, seconds: float) -> None:
        self.sent += 1

    def rate_limited(self) -> None:
        return None

    def waiting(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        if seconds >= 1 and until > self.said_until + 1:
            note(f"waiting {seconds:.0f}s for a vendor's rate budget")
        self.said_until = max(self.said_until, until)


def note(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def write_atomically(path: Path, body: bytes) -> None:
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        handle.write(body)
    os.replace(tmp, path)


class WaitingOut429:
    """The source's fetcher for a backfill: a request the vendor refuses with 429 is sent again,
    with fresh signed headers, once its `Retry-After` has passed (a minute without one, an hour
    at most, as when polling), up to RATE_LIMIT_RETRIES times. The pause is the credential's:
    every request on it waits. Only the refused request is repeated, never a unit's earlier ones."""

    def __init__(self, fetch: SourceFetcher, limiter: SlidingWindowLimiter) -> None:
        self.fetch = fetch
        self.limiter = limiter

    @asynccontextmanager
    async def get(
        self,
        endpoint: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Answer]:
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            if attempt and isinstance(headers, SignedHeaders):
                headers = headers.fresh()
            async with self.fetch.get(endpoint, url, params=params, headers=headers) as answer:
                if answer.status != 429 or attempt == RATE_LIMIT_RETRIES:
                    yield answer
                    return
                wait = answer.retry_after if answer.retry_after is not None else DEFAULT_RATE_LIMIT_PAUSE
            note(f"{self.fetch.source}: {endpoint}: 429, asking again when the vendor allows")
            self.limiter.pause(wait)


async def collect(
    config: Config,
    selected: list[Provider],
    start: float,
    end: float,
    labels: dict[str, str],
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> tuple[SeriesSet, bool, int]:
    """Every selected source's history in one SeriesSet; (series, all delivered, requests sent).
    Sources on one credential share its rate budget; `clock` and `sleep` drive the waits."""
    series = SeriesSet()
    requests = _Requests()
    limiters: dict[tuple[str, str], SlidingWindowLimiter] = {}
    delivered = True
    large_answers = LargeAnswerTurn()
    async with aiohttp.ClientSession(headers={"User-Agent": f"livestream-exporter/{__version__}"}) as session:

        async def one(provider: Provider) -> bool:
            key = provider.rate_limit_key() or f"source {provider.settings.name}"
            limits = tuple(
                RateLimit(limit.requests, limit.per_seconds + WINDOW_MARGIN) for limit in provider.rate_limits
            )
            limiter = limiters.setdefault((provider.name, key), SlidingWindowLimiter(limits, clock=clock, sleep=sleep))
            fetch = SourceFetcher(
                session,
                config.global_.timeout,
                requests,
                limiter,
                source=provider.settings.name,
                max_body=config.global_.max_response_bytes,
                large_answers=large_answers,
            )
            result = await provider.history(WaitingOut429(fetch, limiter), start, end)
            settings = provider.settings
            identity = SourceIdentity(settings.name, settings.provider, tuple(settings.labels.items()))
            for points in result.samples.values():
                series.add(identity, points, labels)
            if result.kept_since is not None:
                kept = datetime.fromtimestamp(result.kept_since, UTC).isoformat(timespec="seconds")
                note(f"{settings.name}: {settings.provider} keeps history only since {kept}; the range is clipped")
            for unit, error in sorted(result.failures.items()):
                note(f"{settings.name}: {unit}: {error.reason}")
            return result.ok

        for ok in await asyncio.gather(*(one(provider) for provider in selected)):
            delivered = delivered and ok
    return series, delivered, requests.sent


def select(config: Config, names: list[str]) -> tuple[list[Provider], list[str]]:
    """The providers that take part, and one line per problem (an unknown --source)."""
    known = {source.name: source for source in config.sources}
    problems = [f"--source {name}: no such source in {config.path}" for name in names if name not in known]
    chosen = [known[name] for name in dict.fromkeys(names) if name in known] if names else config.sources
    selected = []
    for settings in chosen:
        provider = providers()[settings.provider](settings)
        if provider.history_supported:
            selected.append(provider)
        else:
            note(f"{settings.name}: skipped ({settings.provider} keeps no time series to backfill from)")
    return selected, problems


async def run(args: argparse.Namespace) -> int:
    now = time.time()
    try:
        start, end = parse_time(args.start, now), min(parse_time(args.end, now), now)
        config = load_config(args.config)
    except ValueError as error:
        note(f"--from/--to: {error}")
        return 1
    except ConfigError as error:
        for line in error.lines:
            note(line)
        return 1
    if start >= end:
        note("--from must be earlier than --to (and than now)")
        return 1
    selected, problems = select(config, args.sources)
    for line in problems:
        note(line)
    if problems:
        return 1
    history = config.global_.history
    labels = dict(args.labels) if args.labels else dict(history.labels if history else {})
    series, delivered, requests = await collect(config, selected, start, end, labels)
    try:
        write_atomically(Path(args.output), openmetrics.render(series, AUDIENCE_FAMILIES))
    except OSError as error:
        note(f"{args.output}: cannot write: {error.strerror or error}")
        return 1
    note(
        f"{args.output}: {series.sample_count} samples in {len(series.series)} series "
        f"from {len(selected)} sources ({requests} vendor requests)"
    )
    return 0 if delivered else 1


def main(argv: list[str]) -> int:
    """Exit 0 or 1 as the contract says; a usage error is a 1 too (argparse alone would say 2)."""
    try:
        args = build_parser().parse_args(join_time_values(argv))
    except SystemExit as exit_:
        return 1 if exit_.code else 0
    return asyncio.run(run(args))
