"""History samples as the series a scrape would have made: the same names and labels as
/metrics (`source`, `provider`, the sample's labels, the source's constant labels), plus the
labels the scrape adds (`job`, `instance`), each series' points in time order, once per time."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from exporter.history.points import TimedSample
from exporter.metrics import SourceIdentity
from exporter.poll import Labels

SeriesKey = tuple[str, Labels]


def series_labels(identity: SourceIdentity, labels: Labels, extra: Mapping[str, str]) -> Labels:
    """The label order of the exposition; a label already set wins over a later one."""
    ordered: dict[str, str] = {"source": identity.name, "provider": identity.provider}
    for name, value in (*labels, *identity.labels, *extra.items()):
        ordered.setdefault(name, value)
    return tuple(ordered.items())


@dataclass
class SeriesSet:
    """Points by series; a second point at the same time replaces the first."""

    series: dict[SeriesKey, dict[float, float]] = field(default_factory=dict)

    def add(self, identity: SourceIdentity, points: Iterable[TimedSample], extra: Mapping[str, str]) -> None:
        for point in points:
            key = (point.sample.name, series_labels(identity, point.sample.labels, extra))
            self.series.setdefault(key, {})[point.timestamp] = point.sample.value

    def sorted_series(self) -> list[tuple[SeriesKey, list[tuple[float, float]]]]:
        """Series sorted by name then labels, each with its points in time order."""
        return [(key, sorted(self.series[key].items())) for key in sorted(self.series)]

    @property
    def sample_count(self) -> int:
        return sum(len(points) for points in self.series.values())
