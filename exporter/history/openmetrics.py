"""History as an OpenMetrics 1.0 file for `promtool tsdb create-blocks-from openmetrics`.

promtool (checked with Prometheus 2.42) wants timestamps in seconds, `# EOF` last and no blank
line, and silently drops a sample older than one already read for its series: so every series
is written whole, its points in time order, once per time, under one HELP/TYPE per family.
"""

from __future__ import annotations

from collections.abc import Iterable

from exporter.families import MetricFamily
from exporter.history.series import SeriesSet
from exporter.metrics import escape_label_value, family_header, format_value


def format_timestamp(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else repr(seconds)


def render(series: SeriesSet, families: Iterable[MetricFamily]) -> bytes:
    known = {family.name: family for family in families}
    lines: list[bytes] = []
    family_written = ""
    for (name, labels), points in series.sorted_series():
        if name != family_written:
            family = known.get(name) or MetricFamily(name, "gauge", name)
            lines.append(family_header(family, openmetrics=True))
            family_written = name
        head = name + "{" + ",".join(f'{label}="{escape_label_value(value)}"' for label, value in labels) + "}"
        lines.extend(f"{head} {format_value(value)} {format_timestamp(ts)}\n".encode() for ts, value in points)
    lines.append(b"# EOF\n")
    return b"".join(lines)
