"""The only place that knows exposition formats, staleness and counter rules; metric names, types
and HELP come from the one table in `exporter.families`.

Audience series are rendered to bytes when their source is polled, one piece per (family,
source), and a scrape only writes those pieces out under one HELP/TYPE header per family (or
their deflate, prepared once per change in a worker thread), so a scrape never walks the series
in Python and no step holds the event loop long (see docs/performance.md). The
exporter's own metrics are few and live in a prometheus_client registry (exporter.selfmetrics).

Counters built from vendor running totals follow one rule: per series, the highest value seen
for each part (a day, a stream) is kept and the counter is their sum, so it never decreases when
a vendor revises a part downwards or a part leaves the query window; the parts are saved in the
state file so a restart continues where it stopped. A negative, NaN or infinite total (or one that
would take the sum to infinity) is ignored, from a vendor or a state file alike: no counter can
hold it, and OpenMetrics parsers reject the whole scrape over it. Day parts old enough that no
vendor asks for them again are folded into one part, and a unit that leaves the config takes its
counters with it, so the state stays bounded however long the exporter runs.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.utils import floatToGoString

from exporter.families import MetricFamily
from exporter.poll import ALL_UNITS, Labels, PollResult, Sample
from exporter.providers.sample_table import SampleTable
from exporter.selfmetrics import ExporterMetrics

log = logging.getLogger(__name__)

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_value(value: float) -> str:
    """The value exactly as prometheus_client writes it (`floatToGoString`), cheaply.

    Below 1e6 (and above -Inf) Go's formatting and Python's `repr` agree, and audience figures
    live there; only large values, NaN and the infinities take prometheus_client's slower path.
    """
    if -math.inf < value < 1e6:
        return repr(value)
    return floatToGoString(value)


def family_header(family: MetricFamily, openmetrics: bool) -> bytes:
    help_text = family.help.replace("\\", "\\\\").replace("\n", "\\n")
    name = family.name
    if openmetrics:
        help_text = help_text.replace('"', '\\"')
        if family.kind == "counter":
            name = name.removesuffix("_total")
    return f"# HELP {name} {help_text}\n# TYPE {name} {family.kind}\n".encode()


@dataclass(frozen=True, slots=True)
class SourceIdentity:
    """The labels every series of a source carries: `source`, `provider`, then the sample's own
    labels, then the constant `labels` the sample does not set itself."""

    name: str
    provider: str
    labels: Labels = ()


SeriesKey = tuple[str, Labels]
CounterEntry = dict[str, Any]
"""One counter as the state file holds it: {"name", "labels", "parts": {part: total}, "unit"}."""
_Parts = tuple[tuple[str, float], ...]
StoredCounter = tuple[str, Labels, _Parts, str | None]
"""One counter as the store keeps it: (name, labels, ((part, total), ...), unit). Tuples of
strings and floats only, which the garbage collector stops tracking: 10k streams' counters kept
as dicts were 20k objects walked by every full collection (see docs/design.md)."""
FOLDED_PART = "folded"
"""The part holding the sum of day parts that can no longer change."""
FOLD_AFTER_DAYS = 33
"""A day part (`2024-07-01`) this many days older than the source's newest day can no longer
change: no vendor asks further back (Cloudflare catches up at most 31 days, then yesterday), so it
is added into FOLDED_PART and a later sample for that day is ignored (it is already counted there).
Measured from the newest day the vendor reported (a day past tomorrow counts as tomorrow), not
from the local clock, so a skewed clock never drops a day that can still change."""
_DAY_PART = re.compile(r"\d{4}-\d{2}-\d{2}")
UNITS_FREED_PER_STEP = 500
"""Units of the previous rendering let go per step: freeing 10k units' lines at once (100k
objects) was 5 to 9 ms of the poll's last turn."""
SLICE = 250
"""Units (or rendered lines) handled between two hand-backs to the event loop: a few ms each."""
BLOCK_BYTES = 1 << 20
"""A source's family chunk is kept as blocks of about this size: joining 100 MB (a million
series) in one call would hold the loop for tens of ms, and a scrape writes pieces anyway."""
_Unit = tuple[Any, ...]
"""(when the unit last answered, family, line, family, line, ...), each line one rendered series.

One flat tuple of a float, strings and bytes is the smallest form Python has, and the garbage
collector stops tracking it, so 100k series neither fill memory nor lengthen collections (see
docs/performance.md); a class, a NamedTuple or the providers' Sample objects would
do both. A unit that answered with a SampleTable is (when, family, (block, block, ...)) instead:
its rows are rendered straight into blocks, and one series per row needs no de-duplication, so a
million series cost a few blocks, not a million bytes objects and a set of their names."""


@dataclass
class _SourceState:
    identity: SourceIdentity
    units: dict[str, _Unit] = field(default_factory=dict)
    counters: dict[SeriesKey, StoredCounter] = field(default_factory=dict)
    """Entries are tuples, replaced and never changed, so `counter_entries` is a consistent snapshot."""
    newest_day: str = ""
    folded_before: str = ""
    """Day parts before this day have been folded into FOLDED_PART."""
    chunks: dict[str, list[bytes]] = field(default_factory=dict)
    oldest: float = math.inf
    """When the least recently updated unit was updated, so staleness is checked per source."""

    def __post_init__(self) -> None:
        identity = self.identity
        self._head = f'source="{escape_label_value(identity.name)}",provider="{escape_label_value(identity.provider)}"'
        self._constant = tuple(
            (name, escape_label_value(value)) for name, value in identity.labels if name not in ("source", "provider")
        )

    def series_line(self, name: str, labels: Labels, value: float) -> bytes:
        """`name{labels} value\\n`, labels escaped for both exposition formats. A lone surrogate
        (a vendor's title cut inside an emoji) becomes `?` so the rest still publishes."""
        parts = [self._head, *(f'{label}="{escape_label_value(text)}"' for label, text in labels)]
        if self._constant:
            own = {label for label, _ in labels}
            parts.extend(f'{label}="{text}"' for label, text in self._constant if label not in own)
        return f"{name}{{{','.join(parts)}}} {format_value(value)}\n".encode(errors="replace")

    def table_lines(self, table: SampleTable) -> Iterator[bytes]:
        """`series_line` for every row of a table, with the labels all rows share escaped once."""
        shared = [f'{label}="{escape_label_value(text)}"' for label, text in table.labels]
        own = {table.label, *(label for label, _ in table.labels)}
        shared.extend(f'{label}="{text}"' for label, text in self._constant if label not in own)
        prefix = f'{table.name}{{{self._head},{table.label}="'
        suffix = "".join(f",{part}" for part in shared) + "} "
        for label_value, value in table.rows():
            yield f'{prefix}{escape_label_value(label_value)}"{suffix}{format_value(float(value))}\n'.encode()


class _Blocks:
    """Lines joined into blocks of about BLOCK_BYTES as they come, so no join is ever large."""

    def __init__(self) -> None:
        self.blocks: list[bytes] = []
        self._lines: list[bytes] = []
        self._size = 0

    def add(self, line: bytes) -> None:
        self._lines.append(line)
        self._size += len(line)
        if self._size >= BLOCK_BYTES:
            self._flush()

    def extend(self, blocks: Iterable[bytes]) -> None:
        """Blocks already joined (a table's), after the lines added so far; a small one (a table
        of one stream's clients) is joined with its neighbours like a line, so 10k small units
        do not become 10k pieces for a scrape to write one by one."""
        for block in blocks:
            if len(block) >= BLOCK_BYTES // 2:
                self._flush()
                self.blocks.append(block)
            else:
                self.add(block)

    def close(self) -> list[bytes]:
        self._flush()
        return self.blocks

    def _flush(self) -> None:
        if self._lines:
            self.blocks.append(b"".join(self._lines))
            self._lines, self._size = [], 0


def _family_blocks(by_family: dict[str, _Blocks], family: str) -> _Blocks:
    blocks = by_family.get(family)
    if blocks is None:
        blocks = by_family[family] = _Blocks()
    return blocks


class AudienceStore:
    """Per-source audience series: last good values per unit, staleness, counters, rendering.

    A unit's series are rendered to text when that unit answers, and each source's lines are
    joined into one bytes chunk per family, in slices so no step holds the event loop long. So
    a poll costs about its own series, a scrape writes the chunks out, and expiring a stale unit
    costs a join, not a render.
    """

    def __init__(self, families: Iterable[MetricFamily], stale_after: float) -> None:
        self.families: dict[str, MetricFamily] = {}
        for family in families:
            self.families.setdefault(family.name, family)
        self._counters = {name for name, family in self.families.items() if family.kind == "counter"}
        self._headers = {
            (name, openmetrics): family_header(family, openmetrics)
            for name, family in self.families.items()
            for openmetrics in (False, True)
        }
        self.stale_after = stale_after
        self._sources: dict[str, _SourceState] = {}
        self.version = 0
        self.on_change: list[Callable[[], None]] = []
        """Called after the pieces have changed (see Exposition: caches per piece are let go)."""

    def add_source(self, identity: SourceIdentity, counter_state: dict[str, Any] | None = None) -> None:
        """Register a source, continuing its counters from `counter_state` (a state file as
        exporter.persistence writes it); an entry no counter can hold is left out with one
        warning line, never served."""
        state = _SourceState(identity)
        entries = counter_state.get("counters") if isinstance(counter_state, dict) else None
        if isinstance(entries, list):
            for entry in entries:
                restored = restored_counter(entry)
                if restored is not None:
                    state.counters[(restored["name"], restored["labels"])] = (
                        restored["name"],
                        restored["labels"],
                        tuple(restored["parts"].items()),
                        restored["unit"],
                    )
                    state.newest_day = max([state.newest_day, *filter(_DAY_PART.fullmatch, restored["parts"])])
            if len(state.counters) < len(entries):
                log.warning(
                    "state file: counters that are not valid were left out",
                    extra={"source": identity.name, "left_out": len(entries) - len(state.counters)},
                )
        self._sources[identity.name] = state

    def remove_source(self, name: str) -> None:
        if self._sources.pop(name, None) is not None:
            self._changed()

    async def apply_sliced(self, source: str, result: PollResult, now: float) -> None:
        """Replace the units that answered, keep failed ones until stale, drop the rest; handing
        the event loop back every `SLICE` units or lines, so a source with 100k series never
        stalls scrapes or other polls for long."""
        for _ in self._apply_steps(source, result, now):
            await asyncio.sleep(0)

    async def expire(self, now: float) -> None:
        """Drop units older than `stale_after`; costs one comparison per source when none is."""
        for state in list(self._sources.values()):
            if now - state.oldest > self.stale_after:
                self._drop_stale(state, now)
                for _ in self._join_steps(state):
                    await asyncio.sleep(0)

    def counter_entries(self, source: str) -> list[StoredCounter]:
        """The source's counters as they stand now, for `counter_json` later: a copy of the
        list only (about 0.1 ms for 10k), so a caller can build the JSON form in slices."""
        return list(self._sources[source].counters.values())

    def _render_steps(
        self, state: _SourceState, samples: Sequence[Sample], rendered: list[Any], result: PollResult
    ) -> Iterator[None]:
        """Append (family, line) per sample to `rendered`, or for a table (family, blocks), a
        slice of SLICE lines at a time. A sample of a family `exporter.families` does not
        declare is a provider bug: it is counted with the rejected points (and logged at debug),
        never published untyped."""
        if isinstance(samples, SampleTable) and samples.name in self.families and samples.name not in self._counters:
            blocks = _Blocks()
            for count, line in enumerate(state.table_lines(samples), 1):
                blocks.add(line)
                if count % SLICE == 0:
                    yield
            rendered += (samples.name, tuple(blocks.close()))
            return
        for count, sample in enumerate(samples, 1):
            name, value = sample.name, sample.value
            if count % SLICE == 0:
                yield
            if name not in self.families:
                result.rejected_points += 1
                log.debug("undeclared metric family rejected", extra={"source": state.identity.name, "family": name})
                continue
            if name in self._counters:
                entry = state.counters.get((name, sample.labels))
                if entry is None:
                    continue
                value = sum(total for _, total in entry[2])
            rendered += (name, state.series_line(name, sample.labels, value))

    def _apply_steps(self, source: str, result: PollResult, now: float) -> Iterator[None]:
        state = self._sources[source]
        previous = state.units
        if ALL_UNITS in result.failures:
            kept = dict(previous)
        else:
            kept = {key: previous[key] for key in result.failures if key in previous}
        fold_before = _fold_horizon(state.newest_day, now)
        if fold_before > state.folded_before:
            yield from _fold_steps(state, fold_before)
        counted = 0
        for unit, samples in result.samples.items():
            if isinstance(samples, SampleTable) and samples.name not in self._counters:
                continue
            for sample in samples:
                if sample.name in self._counters:
                    _count(state, unit, sample)
                counted += 1
            counted += 1
            if counted >= SLICE:
                counted = 0
                yield
        if ALL_UNITS not in result.failures:
            yield from _forget_steps(state, result)
        lines = 0
        for key, samples in result.samples.items():
            rendered: list[Any] = [now]
            yield from self._render_steps(state, samples, rendered, result)
            kept[key] = tuple(rendered)
            lines += len(rendered) // 2 + 1
            if lines >= SLICE:
                lines = 0
                yield
        if self._sources.get(source) is not state:
            return
        state.units = kept
        self._drop_stale(state, now)
        yield from self._join_steps(state)
        while previous:
            for _ in range(min(UNITS_FREED_PER_STEP, len(previous))):
                previous.popitem()
            yield

    def _drop_stale(self, state: _SourceState, now: float) -> None:
        state.units = {key: unit for key, unit in state.units.items() if now - unit[0] <= self.stale_after}
        state.oldest = min((unit[0] for unit in state.units.values()), default=math.inf)

    def _join_steps(self, state: _SourceState) -> Iterator[None]:
        """One chunk per family; a series two units both report is written once (the first).
        If the units change while this is sliced, the later join writes the chunks instead."""
        units = state.units
        by_family: dict[str, _Blocks] = {}
        seen: set[bytes] = set()
        count = 0
        for unit in list(units.values()):
            if len(unit) == 3 and type(unit[2]) is tuple:
                _family_blocks(by_family, unit[1]).extend(unit[2])
                continue
            for index in range(1, len(unit), 2):
                line = unit[index + 1]
                series = line[: line.rindex(b" ")]
                count += 1
                if count >= 2 * SLICE:
                    count = 0
                    yield
                if series in seen:
                    continue
                seen.add(series)
                _family_blocks(by_family, unit[index]).add(line)
            count += 1
        chunks = {}
        for name, blocks in by_family.items():
            chunks[name] = blocks.close()
            yield
        if state.units is units:
            replaced, state.chunks = state.chunks, chunks
            self._changed()
            while replaced:
                replaced.popitem()
                yield

    def _changed(self) -> None:
        self.version += 1
        for listener in self.on_change:
            listener()

    def pieces(self, openmetrics: bool) -> list[bytes]:
        """The audience body as its pre-rendered pieces, in order: per family its HELP/TYPE
        header, then each source's chunk. The same objects come back until something changes,
        so callers can cache work per piece (see Exposition's gzip) and write them out without
        joining 10 MB first."""
        pieces: list[bytes] = []
        for name in self.families:
            chunks = [chunk for state in self._sources.values() for chunk in state.chunks.get(name, ())]
            if chunks:
                pieces.append(self._headers[(name, openmetrics)])
                pieces.extend(chunks)
        return pieces


def counter_json(entry: StoredCounter) -> CounterEntry:
    """One counter as its state file holds it (see `restored_counter` for the way back)."""
    name, labels, parts, unit = entry
    return {"name": name, "labels": labels, "parts": dict(parts), "unit": unit}


def restored_counter(entry: Any) -> CounterEntry | None:
    """A counter entry from a state file as the store keeps it, or None when no counter can hold it
    (a part that is not a finite number >= 0, a sum that is infinite, a malformed name or label)."""
    if not isinstance(entry, dict):
        return None
    name, labels, parts, unit = entry.get("name"), entry.get("labels"), entry.get("parts"), entry.get("unit")
    if not isinstance(name, str) or not isinstance(labels, list | tuple) or not isinstance(parts, dict):
        return None
    if unit is not None and not isinstance(unit, str):
        return None
    if not all(
        isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(t, str) for t in pair) for pair in labels
    ):
        return None
    if not all(
        isinstance(part, str)
        and isinstance(total, int | float)
        and not isinstance(total, bool)
        and 0 <= total < math.inf
        for part, total in parts.items()
    ):
        return None
    totals = {part: float(total) for part, total in parts.items()}
    if not math.isfinite(sum(totals.values())):
        return None
    return {"name": name, "labels": tuple((k, v) for k, v in labels), "parts": totals, "unit": unit}


def _fold_horizon(newest_day: str, now: float) -> str:
    """The day before which day parts can no longer change (see FOLD_AFTER_DAYS), or ""."""
    tomorrow = datetime.fromtimestamp(now, UTC).date() + timedelta(days=1)
    try:
        newest = min(datetime.strptime(newest_day, "%Y-%m-%d").date(), tomorrow) if newest_day else None
    except ValueError:
        return ""
    return (newest - timedelta(days=FOLD_AFTER_DAYS)).isoformat() if newest else ""


def _count(state: _SourceState, unit: str, sample: Sample) -> None:
    """Keep the highest total seen for the sample's part (see the module docstring)."""
    value, part = sample.value, sample.part
    if not 0 <= value < math.inf:
        return
    if _DAY_PART.fullmatch(part):
        if part < state.folded_before:
            return
        state.newest_day = max(state.newest_day, part)
    key = (sample.name, sample.labels)
    entry = state.counters.get(key)
    if entry is None:
        parts: dict[str, float] = {part: value}
    else:
        parts = dict(entry[2])
        seen = parts.get(part)
        if seen is not None and seen >= value and entry[3] == unit:
            return
        parts[part] = value if seen is None else max(seen, value)
        if not math.isfinite(sum(parts.values())):
            return
    state.counters[key] = (sample.name, sample.labels, tuple(parts.items()), unit)


def _fold_steps(state: _SourceState, fold_before: str) -> Iterator[None]:
    """Add the day parts older than `fold_before` into FOLDED_PART, order kept so the sum is the same."""
    for count, entry in enumerate(list(state.counters.values()), 1):
        key = (entry[0], entry[1])
        parts = dict(entry[2])
        old = [part for part in parts if part < fold_before and _DAY_PART.fullmatch(part)]
        if old:
            folded = parts.get(FOLDED_PART, 0.0)
            for part in old:
                folded += parts[part]
            kept = {part: total for part, total in parts.items() if part != FOLDED_PART and part not in old}
            state.counters[key] = (entry[0], entry[1], ((FOLDED_PART, folded), *kept.items()), entry[3])
        if count % SLICE == 0:
            yield
    state.folded_before = fold_before


def _forget_steps(state: _SourceState, result: PollResult) -> Iterator[None]:
    """Drop the counters of units the poll no longer covers (they left the config or this shard).
    Counters saved before units were recorded go once a poll without failures did not report them."""
    covered = result.samples.keys() | result.failures.keys()
    gone = []
    for count, entry in enumerate(list(state.counters.values()), 1):
        unit = entry[3]
        if (unit is None and result.ok) or (unit is not None and unit not in covered):
            gone.append((entry[0], entry[1]))
        if count % SLICE == 0:
            yield
    for key in gone:
        state.counters.pop(key, None)


GZIP_LEVEL = 6
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
"""Magic, deflate, no flags, no modification time, no extra flags, unknown OS (RFC 1952)."""


def deflate_pieces(pieces: list[bytes], wanted: set[int]) -> tuple[dict[int, bytes], int]:
    """Deflate the pieces whose id is in `wanted`, each on its own as raw deflate ending on a
    sync flush (byte-aligned, not final), and the CRC-32 of all pieces in order. Meant for a
    worker thread: zlib releases the GIL while it works, so the event loop keeps running."""
    deflated: dict[int, bytes] = {}
    crc = 0
    for piece in pieces:
        if id(piece) in wanted and id(piece) not in deflated:
            compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
            deflated[id(piece)] = compressor.compress(piece) + compressor.flush(zlib.Z_SYNC_FLUSH)
        crc = zlib.crc32(piece, crc)
    return deflated, crc


@dataclass(frozen=True, slots=True)
class _DeflatedAudience:
    deflated: list[bytes]
    """Each piece's deflate, in order: never joined (15 MB for a million series)."""
    crc: int
    size: int


class Exposition:
    """Joins the audience store and the exporter's own metrics into one scrape body.

    Gzip: deflate streams made independently and ended on a sync flush concatenate into one
    valid deflate stream, so every audience piece (a family header, one source's chunk) is
    deflated once, in a worker thread, after it changes; a scrape deflates only the small
    own-metrics part (as the final block) and wraps the gzip header and trailer around the lot:
    a single gzip member that any decoder accepts. Concurrent scrapes after a change share one
    compression job, and the event loop never deflates or checksums the audience itself.
    """

    def __init__(self, store: AudienceStore, own: ExporterMetrics) -> None:
        self.store = store
        self.own = own
        self._deflated: dict[int, tuple[bytes, bytes]] = {}
        """id(piece) -> (piece, its deflate); holding the piece keeps its id from being reused."""
        self._audience: dict[bool, tuple[int, asyncio.Future[_DeflatedAudience]]] = {}
        store.on_change.append(self._forget_replaced)

    def _forget_replaced(self) -> None:
        """Let go of the deflates of pieces the store has replaced, and of the pieces themselves,
        when the store changes rather than at the next gzip scrape: held until then, a source's
        previous rendering (12 MB at 100k series) stayed alive beside the new one after every poll
        (RSS +21 % from the first poll of a 100k-series answer to the twentieth, measured)."""
        current = {id(piece) for openmetrics in (False, True) for piece in self.store.pieces(openmetrics)}
        self._deflated = {key: entry for key, entry in self._deflated.items() if key in current}
        self._audience = {key: cached for key, cached in self._audience.items() if not cached[1].done()}

    def tail(self, openmetrics: bool) -> bytes:
        return _ended(self.own.render(openmetrics), openmetrics)

    def pieces(self, openmetrics: bool) -> list[bytes]:
        """The body in pieces, for a response to write one after the other."""
        return [*self.store.pieces(openmetrics), self.tail(openmetrics)]

    def body(self, openmetrics: bool) -> bytes:
        return b"".join(self.pieces(openmetrics))

    async def scraped_tail(self, openmetrics: bool) -> bytes:
        """`tail` for a scrape: the own metrics' last rendering while they are unchanged (every
        scrape between two polls), else rendered in a worker thread (1.5 to 3 ms of
        prometheus_client), so concurrent scrapes do not add up on the event loop."""
        own = self.own.current(openmetrics)
        if own is None:
            own = await asyncio.to_thread(self.own.render, openmetrics)
        return _ended(own, openmetrics)

    async def scrape_pieces(self, openmetrics: bool) -> list[bytes]:
        """`pieces` for a scrape."""
        audience = self.store.pieces(openmetrics)
        return [*audience, await self.scraped_tail(openmetrics)]

    async def gzip_body(self, openmetrics: bool) -> bytes:
        return b"".join(await self.gzip_pieces(openmetrics))

    async def gzip_pieces(self, openmetrics: bool) -> list[bytes]:
        """The gzip body in pieces, for a response to write one after the other (a scrape of a
        million series would otherwise copy 15 MB on the event loop, twice)."""
        audience = await self._deflated_audience(openmetrics)
        tail = await self.scraped_tail(openmetrics)
        compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        tail_deflated = compressor.compress(tail) + compressor.flush(zlib.Z_FINISH)
        trailer = struct.pack("<II", zlib.crc32(tail, audience.crc), (audience.size + len(tail)) & 0xFFFFFFFF)
        return [GZIP_HEADER, *audience.deflated, tail_deflated + trailer]

    async def _deflated_audience(self, openmetrics: bool) -> _DeflatedAudience:
        version = self.store.version
        cached = self._audience.get(openmetrics)
        if cached is None or cached[0] != version or _failed(cached[1]):
            cached = (version, asyncio.ensure_future(self._deflate_audience(openmetrics)))
            self._audience[openmetrics] = cached
        return await asyncio.shield(cached[1])

    async def _deflate_audience(self, openmetrics: bool) -> _DeflatedAudience:
        pieces = self.store.pieces(openmetrics)
        known = {id(piece): self._deflated[id(piece)][1] for piece in pieces if id(piece) in self._deflated}
        wanted = {id(piece) for piece in pieces} - known.keys()
        fresh, crc = await asyncio.to_thread(deflate_pieces, pieces, wanted)
        known.update(fresh)
        self._deflated.update((id(piece), (piece, known[id(piece)])) for piece in pieces)
        current = {id(piece) for openmetrics_ in (False, True) for piece in self.store.pieces(openmetrics_)}
        self._deflated = {key: entry for key, entry in self._deflated.items() if key in current}
        deflated = [known[id(piece)] for piece in pieces]
        return _DeflatedAudience(deflated, crc, sum(len(piece) for piece in pieces))


def _ended(own: bytes, openmetrics: bool) -> bytes:
    """The own metrics as the body's last piece: OpenMetrics ends with `# EOF`."""
    return own + (b"# EOF\n" if openmetrics else b"")


def _failed(future: asyncio.Future[Any]) -> bool:
    return future.done() and (future.cancelled() or future.exception() is not None)
