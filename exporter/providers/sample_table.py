"""Many samples of one family as columns, for answers with 100k to 1M series.

A `Sample` per series costs about 300 bytes in five objects the garbage collector tracks; with a
million of them alive, every full collection walks them all and holds the event loop for tens of
milliseconds. A table keeps one label's values as a list of strings and the sample values as an
`array('d')` (8 bytes each, no object per value, so nothing long-lived is scattered over the
allocator's pools between a poll's short-lived objects), hands out `Sample`s only when iterated,
and lets the metrics layer render the rows without making them at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload

from exporter.poll import Labels, Sample


@dataclass(frozen=True, slots=True, eq=False)
class SampleTable(Sequence[Sample]):
    """Samples of family `name` whose labels are `label` (its value from `label_values`, one per
    row) followed by the shared `labels`, with the value from `values` in the same row.

    `SampleTable("v", "client", (("g", "1m"),), ["a", "b"], array("d", [5, 7]))` holds
    `v{client="a",g="1m"} 5` and `v{client="b",g="1m"} 7`. A provider may keep the columns as its
    own memory of the answer; use a table within the poll that produced it: the provider may
    empty the columns once its next poll of the unit has replaced them.
    """

    name: str
    label: str
    labels: Labels
    label_values: Sequence[str]
    values: Sequence[float]
    total: float | None = None
    """The sum of `values` when the provider added it up while building them."""

    def __len__(self) -> int:
        return len(self.label_values)

    @overload
    def __getitem__(self, index: int) -> Sample: ...

    @overload
    def __getitem__(self, index: slice) -> list[Sample]: ...

    def __getitem__(self, index: int | slice) -> Sample | list[Sample]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return self._sample(self.label_values[index], self.values[index])

    def __iter__(self) -> Iterator[Sample]:
        for label_value, value in self.rows():
            yield self._sample(label_value, value)

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same samples in the same order (a list from a small path)."""
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def rows(self) -> Iterator[tuple[str, float]]:
        """(the varying label's value, the sample's value) per row, without making Samples."""
        return zip(self.label_values, self.values, strict=True)

    def value_total(self) -> float:
        """The sum of the values, without making Samples: `total` when the provider kept it."""
        return self.total if self.total is not None else float(sum(self.values))

    def _sample(self, label_value: str, value: float) -> Sample:
        return Sample(self.name, ((self.label, label_value), *self.labels), float(value))
