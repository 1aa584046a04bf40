"""The landing page: what a person opening the exporter in a browser wants to see at a glance.

Each source's audience now (the sum of its viewer gauges, `livestream_concurrent_viewers` and
`livestream_unique_viewers`, in its last good poll), a sparkline of the last hour, the credits it
has left, its state and its last error. The hour is kept in memory (AudienceHistory, fed by the
scheduler after every poll), so `--demo` shows something alive without Prometheus or Grafana.
The page reloads itself every REFRESH_SECONDS. It never shows a secret: names, numbers, and
last errors that the scheduler has already redacted.
"""

from __future__ import annotations

import asyncio
import html
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from exporter import __version__
from exporter.demo.faults import FAULT_PATH
from exporter.families import CONCURRENT_VIEWERS, UNIQUE_VIEWERS
from exporter.poll import PollResult, Sample
from exporter.providers.sample_table import SampleTable

if TYPE_CHECKING:
    from exporter.sources import SourceRuntime
    from exporter.status import SourceStatus

VIEWER_FAMILIES = frozenset({CONCURRENT_VIEWERS.name, UNIQUE_VIEWERS.name})
HISTORY_SECONDS = 3600.0
REFRESH_SECONDS = 5
SPARK_WIDTH, SPARK_HEIGHT = 120, 24
SAMPLES_PER_TURN = 2000
"""Samples looked at between two hand-backs to the event loop (about 1 ms), counted in samples
rather than units: 1,000 Streams Charts units of a few dozen samples each held the loop 30 to
60 ms."""


class GapStatus(Protocol):
    """The gap filler as the page reads it (exporter.history.filler.GapFiller)."""

    def status(self, source: str) -> str | None: ...


@dataclass
class SourceFigures:
    """One source's audience and credits as its polls left them."""

    audience: float | None = None
    """Sum of the viewer gauges of the last good poll; None while there has been none (or the
    vendor has no viewer gauge, as Cloudflare and Streams Charts)."""
    credits_left: float | None = None
    history: deque[tuple[float, float]] = field(default_factory=deque)
    """(time, audience) of each good poll within the last HISTORY_SECONDS, oldest first."""


def viewer_total(samples: Sequence[Sample]) -> float | None:
    """The sum of a unit's viewer gauges, None when it has none; a table (a million clients) is
    summed without making a Sample per row."""
    if isinstance(samples, SampleTable):
        return samples.value_total() if samples.name in VIEWER_FAMILIES and len(samples) else None
    values = [sample.value for sample in samples if sample.name in VIEWER_FAMILIES]
    return sum(values) if values else None


class AudienceHistory:
    """Per-source ring buffers of the last hour's audience; one entry per good poll."""

    def __init__(self, window: float = HISTORY_SECONDS) -> None:
        self.window = window
        self._sources: dict[str, SourceFigures] = {}

    async def record(self, source: str, result: PollResult, now: float) -> None:
        """Take the poll's figures, looking at SAMPLES_PER_TURN samples at a time with the event
        loop handed back in between (a small poll in one go)."""
        figures = self._sources.setdefault(source, SourceFigures())
        if result.credits_remaining is not None:
            figures.credits_left = result.credits_remaining
        viewers: list[float] = []
        looked_at = 0
        for samples in result.samples.values():
            if looked_at >= SAMPLES_PER_TURN:
                looked_at = 0
                await asyncio.sleep(0)
            total = viewer_total(samples)
            if total is not None:
                viewers.append(total)
            looked_at += 1 if isinstance(samples, SampleTable) else len(samples)
        if not result.ok or not viewers:
            return
        figures.audience = sum(viewers)
        figures.history.append((now, figures.audience))
        while figures.history and figures.history[0][0] < now - self.window:
            figures.history.popleft()

    def figures(self, source: str) -> SourceFigures:
        return self._sources.get(source) or SourceFigures()


@dataclass(frozen=True)
class LandingContext:
    """What the page says about how the process runs, beyond its sources."""

    exposed_address: str | None = None
    """The listen address when it is every interface and no web config protects it, else None."""
    simulators: dict[str, str] = field(default_factory=dict)
    """--demo: each simulator's provider and base URL."""


def exposed(listen_address: str, host: str | None, protected: bool) -> str | None:
    """`listen_address` when it serves every interface without TLS or basic auth, else None."""
    return listen_address if host in (None, "", "0.0.0.0", "::") and not protected else None


def sparkline(points: Iterable[tuple[float, float]], now: float, window: float = HISTORY_SECONDS) -> str:
    """The last hour as an inline SVG polyline: time left to right, the audience's own range bottom
    to top (a flat line when it did not change)."""
    points = list(points)
    if not points:
        return ""
    low = min(value for _, value in points)
    high = max(value for _, value in points)
    span = (high - low) or 1.0
    coords = " ".join(
        f"{2 + (SPARK_WIDTH - 4) * max(0.0, 1 - (now - ts) / window):.1f},"
        f"{SPARK_HEIGHT - 2 - (SPARK_HEIGHT - 4) * ((value - low) / span if high > low else 0.5):.1f}"
        for ts, value in points
    )
    last_x, last_y = coords.rsplit(" ", 1)[-1].split(",")
    label = f"last hour: {len(points)} poll{'s' if len(points) != 1 else ''}, between {low:,.0f} and {high:,.0f}"
    return (
        f'<svg class="spark" width="{SPARK_WIDTH}" height="{SPARK_HEIGHT}" '
        f'viewBox="0 0 {SPARK_WIDTH} {SPARK_HEIGHT}" role="img" aria-label="{label}">'
        f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{coords}"/>'
        f'<circle cx="{last_x}" cy="{last_y}" r="2" fill="#1f77b4"/></svg>'
    )


def _when(ts: float | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _number(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _row(status: SourceStatus, figures: SourceFigures, now: float) -> str:
    state = "pending" if not status.tried else ("up" if status.up else "down")
    name = html.escape(status.name)
    cells = [
        f"<td>{name}</td>",
        f"<td>{html.escape(status.provider)}</td>",
        f'<td class="state {state}">{status.state()}</td>',
        f'<td class="num audience" data-source="{name}">{_number(figures.audience, 0)}</td>',
        f"<td>{sparkline(figures.history, now)}</td>",
        f'<td class="num credits" data-source="{name}">{_number(figures.credits_left, 1)}</td>',
        f"<td>{status.interval:g}s</td>",
        f"<td>{_when(status.last_success)}</td>",
        f"<td>{_when(status.next_poll)}</td>",
        f"<td>{html.escape(status.last_error or '')}</td>",
    ]
    return "<tr>" + "".join(cells) + "</tr>"


def _banners(context: LandingContext) -> str:
    parts = []
    if context.exposed_address is not None:
        parts.append(
            '<p class="banner warn" id="listen-warning">Serving every interface '
            f"(<code>{html.escape(context.exposed_address)}</code>) without <code>--web.config.file</code>: "
            "anyone who can reach this port can read these figures. Listen on "
            "<code>127.0.0.1:PORT</code>, or add TLS and basic auth.</p>"
        )
    if context.simulators:
        items = "".join(
            f"<li>{html.escape(provider)}: <code>{html.escape(url)}</code></li>"
            for provider, url in sorted(context.simulators.items())
        )
        example = html.escape(next(iter(sorted(context.simulators.items())))[1] + FAULT_PATH)
        parts.append(
            '<div class="banner demo" id="demo-banner"><p><b>Demo mode</b>: every source polls a '
            f"built-in simulator on loopback:</p><ul>{items}</ul>"
            "<p>Make one fail, then clear it:<br><code>curl -X POST -d '{&quot;status&quot;: 503}' "
            f"{example}</code><br><code>curl -X POST -d '{{}}' {example}</code></p></div>"
        )
    return "".join(parts)


def render(
    runtimes: Iterable[SourceRuntime],
    history: AudienceHistory,
    gaps: GapStatus,
    context: LandingContext,
    telemetry_path: str,
    now: float,
) -> str:
    runtimes = list(runtimes)
    rows = "".join(_row(runtime.status, history.figures(runtime.name), now) for runtime in runtimes)
    filling = [(runtime.name, gaps.status(runtime.name)) for runtime in runtimes]
    gap_lines = "".join(
        f'<li class="gap" data-source="{html.escape(name)}">{html.escape(name)}: {html.escape(line)}</li>'
        for name, line in filling
        if line
    )
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<title>livestream-exporter</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.3em .8em;text-align:left;white-space:nowrap}}
tr:nth-child(even){{background:#f4f4f4}}.num{{text-align:right;font-variant-numeric:tabular-nums}}
.up{{color:#2a7a2a}}.down{{color:#b22}}.banner{{padding:.5em 1em;border-radius:4px;margin:1em 0}}
.warn{{background:#fde8e8;border:1px solid #b22}}.demo{{background:#e8f0fd;border:1px solid #1f77b4}}</style></head>
<body><h1>livestream-exporter {html.escape(__version__)}</h1>
{_banners(context)}
<p><a href="{html.escape(telemetry_path)}">Metrics</a> · <a href="/-/healthy">Health</a> ·
<a href="/-/ready">Readiness</a> · refreshes every {REFRESH_SECONDS} s · <span id="rendered">{_when(now)}</span></p>
<table><tr><th>Source</th><th>Provider</th><th>State</th><th>Viewers now</th><th>Last hour</th>
<th>Credits left</th><th>Interval</th><th>Last success</th><th>Next poll</th><th>Last error</th></tr>
{rows}
</table>{f"<h2>History</h2><ul>{gap_lines}</ul>" if gap_lines else ""}</body></html>"""
