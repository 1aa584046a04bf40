"""Many samples of one family in one flat list, for answers with 100k to 1M series.

A `Sample` per series costs about 300 bytes in five objects the garbage collector tracks; with a
million of them alive, every full collection walks them all and holds the event loop for tens of
milliseconds. A table keeps the rows as one flat list of strings and floats (one object to the
collector, none of its entries tracked), hands out `Sample`s only when iterated, and lets the
metrics layer render the rows without making them at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, overload

from exporter.poll import Labels, Sample


@dataclass(frozen=True, slots=True, eq=False)
class SampleTable(Sequence[Sample]):
    """Samples of family `name` whose labels are `label` (a different value per row) followed by
    the shared `labels`.

    `rows` is flat, `stride` entries per row: the label's value, then the sample's value, then
    whatever else the provider keeps about the row (ignored here), so a provider can keep the
    table's rows as its own memory of the answer. `SampleTable("v", "client", (("g", "1m"),),
    ["a", 5.0, "b", 7.0])` holds `v{client="a",g="1m"} 5` and `v{client="b",g="1m"} 7`. Use a
    table within the poll that produced it: the provider may empty its rows once its next poll
    of the unit has replaced them.
    """

    name: str
    label: str
    labels: Labels
    rows: Sequence[Any]
    stride: int = 2
    total: float | None = None
    """The sum of the rows' values when the provider added it up while building them."""

    def __len__(self) -> int:
        return len(self.rows) // self.stride

    @overload
    def __getitem__(self, index: int) -> Sample: ...

    @overload
    def __getitem__(self, index: slice) -> list[Sample]: ...

    def __getitem__(self, index: int | slice) -> Sample | list[Sample]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("SampleTable index out of range")
        start = index * self.stride
        return self._sample(self.rows[start], self.rows[start + 1])

    def __iter__(self) -> Iterator[Sample]:
        rows, stride = self.rows, self.stride
        for start in range(0, len(rows), stride):
            yield self._sample(rows[start], rows[start + 1])

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same samples in the same order (a list from a small path)."""
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def label_values(self) -> Iterator[tuple[str, float]]:
        """(the varying label's value, the sample's value) per row, without making Samples."""
        rows, stride = self.rows, self.stride
        for start in range(0, len(rows), stride):
            yield rows[start], rows[start + 1]

    def value_total(self) -> float:
        """The sum of the rows' values, without making Samples: `total` when the provider kept
        it (adding up a million rows here would hold the event loop ~20 ms)."""
        if self.total is not None:
            return self.total
        return float(sum(islice(self.rows, 1, None, self.stride)))

    def _sample(self, label_value: str, value: float) -> Sample:
        return Sample(self.name, ((self.label, label_value), *self.labels), float(value))
