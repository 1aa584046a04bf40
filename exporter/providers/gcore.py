"""Gcore streaming statistics: unique viewers of live streams via CDN.

Follows provider-docs/gcore-live-unique-viewers.md (`GET /streaming/statistics/stream/viewers`)
and gcore-notes.md (auth header `Authorization: APIKey <key>`, error bodies). Publishes the
newest *closed* bucket, one whose start + granularity <= now, because the open bucket still
grows and would read as a drop every time a new one opens:

    livestream_unique_viewers{client="123",stream="42",granularity="1m"} 20
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain
from typing import Any, overload

from exporter.families import UNIQUE_VIEWERS
from exporter.history.points import HistoryResult, TimedSample, history_units
from exporter.poll import WHOLE_SOURCE, Answer, Fetcher, InvalidBody, PollResult, Sample, ShardView
from exporter.providers import register
from exporter.providers.base import Provider, poll_units, raise_unless_ok
from exporter.providers.sample_table import SampleTable
from exporter.settings import Secret, SourceSettings, one_of
from exporter.slices import release

GRANULARITY_SECONDS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400}
TOTAL_UNIT = "all"
CLOSED_BUCKETS_ASKED = 2
"""How far back a poll with nothing remembered looks: two closed buckets, in case the newest
arrives late. Older buckets are never asked for: only the newest closed one is published."""
MAX_DEFAULT_INTERVAL = 900.0
NUMBER = frozenset((int, float))
"""JSON number types, compared with `type(...) in`: exact types, so `true` is not a count (and
the check costs a lookup: it runs for every point of a million clients)."""
HISTORY_BUCKETS_PER_REQUEST = 1000
"""Buckets asked for in one history request: a day of minutes fits in two, and no answer is huge."""


class GcoreSettings(SourceSettings):
    min_interval = 10.0
    """Buckets close once a minute at the finest; 10s sees a closed one soon after it closes."""

    api_key: Secret
    granularity: one_of(*GRANULARITY_SECONDS) = "1m"  # type: ignore[valid-type]
    stream_ids: list[int] | None = None
    client_user_id: int | None = None


def iso_utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def vendor_words(body: Any) -> str | None:
    """The vendor's own words from either documented error shape, without the request."""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            return "; ".join(str(item) for item in errors)
        if body.get("message"):
            request_id = body.get("request_id")
            suffix = f" (request_id {request_id})" if request_id else ""
            return f"{body.get('exception_class') or 'error'}: {body['message']}{suffix}"
    return None


def as_pairs(points: list[Any]) -> list[Any]:
    """The page's schema types `streams` as one flat int64 array (timestamp, count, timestamp,
    count, ...), its example as `[timestamp, count]` pairs: a list opening with a number is read
    as the flat form, two values a point (a lone trailing value is an unusable point)."""
    if points and isinstance(points[0], int | float) and not isinstance(points[0], bool):
        return [points[i : i + 2] for i in range(0, len(points), 2)]
    return points


def newest_closed_bucket(points: Any, granularity: int, now: float) -> tuple[tuple[float, float] | None, int]:
    """The newest (timestamp, count) whose bucket has closed, and how many points were unusable."""
    usable, rejected = usable_points(points)
    newest: tuple[float, float] | None = None
    for ts, count in usable:
        if ts + granularity <= now and (newest is None or ts > newest[0]):
            newest = (ts, count)
    return newest, rejected


def usable_points(points: Any) -> tuple[list[tuple[float, float]], int]:
    """Every (timestamp, count) of a client's `streams`, and how many points were unusable."""
    if not isinstance(points, list):
        raise InvalidBody("metrics.streams is not a list")
    usable: list[tuple[float, float]] = []
    rejected = 0
    for point in as_pairs(points):
        if (
            type(point) is not list
            or len(point) != 2
            or type(point[0]) not in NUMBER
            or type(point[1]) not in NUMBER
            or not math.isfinite(point[0])
            or not 0 <= point[1] < math.inf
        ):
            rejected += 1
            continue
        usable.append((float(point[0]), float(point[1])))
    return usable, rejected


@register
class Gcore(Provider):
    name = "gcore"
    settings_model = GcoreSettings
    default_base_url = "https://api.gcore.com"
    families = (UNIQUE_VIEWERS,)
    history_supported = True
    settings: GcoreSettings

    def __init__(self, settings: GcoreSettings, shard: ShardView = WHOLE_SOURCE) -> None:
        super().__init__(settings, shard)
        self._units = [str(sid) for sid in settings.stream_ids] if settings.stream_ids else [TOTAL_UNIT]
        self._newest: dict[str, Remembered] = {}
        """Per unit, the newest closed bucket seen per client, as columns: small enough for 100k
        streams or a million clients (see `Remembered`)."""
        self._oldest: dict[str, float] = {}
        """Per unit, the oldest bucket start in `_newest` (where the next poll's window starts)."""

    @property
    def granularity_seconds(self) -> int:
        return GRANULARITY_SECONDS[self.settings.granularity]

    def default_interval(self) -> float:
        """A bucket closes once per granularity; hourly and daily buckets are still checked every
        15 minutes so a closed bucket shows up soon after the vendor has it."""
        return float(min(self.granularity_seconds, MAX_DEFAULT_INTERVAL))

    def units(self) -> list[str]:
        return list(self._units)

    def window(self, unit: str, now: float) -> tuple[str, str]:
        """From the newest bucket not yet seen closed to now (which includes the open bucket), so
        no poll asks for a bucket it already has; with nothing remembered (the first poll, or
        after a gap), from two closed buckets back."""
        g = self.granularity_seconds
        open_bucket = (now // g) * g
        start = open_bucket - CLOSED_BUCKETS_ASKED * g
        if unit in self._oldest:
            start = min(max(start, self._oldest[unit] + g), open_bucket)
        return iso_utc(start), iso_utc(now)

    def params(self, stream_id: int | None, now: float) -> dict[str, str]:
        return self.range_params(stream_id, *self.window(TOTAL_UNIT if stream_id is None else str(stream_id), now))

    def range_params(self, stream_id: int | None, start: str, end: str) -> dict[str, str]:
        params = {"from": start, "to": end, "granularity": self.settings.granularity}
        if stream_id is not None:
            params["stream_id"] = str(stream_id)
        if self.settings.client_user_id is not None:
            params["client_user_id"] = str(self.settings.client_user_id)
        return params

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"APIKey {self.settings.api_key.get_secret_value()}"}

    @property
    def url(self) -> str:
        return f"{self.base_url}/streaming/statistics/stream/viewers"

    async def poll(self, fetch: Fetcher, now: datetime) -> PollResult:
        now_ts = now.timestamp()
        headers = self.headers()
        url = self.url

        async def poll_stream(unit: str, result: PollResult) -> SampleTable:
            stream_id = None if unit == TOTAL_UNIT else int(unit)
            async with fetch.get(
                "stream_viewers", url, params=self.params(stream_id, now_ts), headers=headers
            ) as answer:
                raise_unless_ok(answer, vendor_words)
                return await self.parse_answer(answer, unit, now_ts, result)

        units = self.active_units()
        for gone in self._newest.keys() - set(units):
            del self._newest[gone]
            self._oldest.pop(gone, None)
        return await poll_units(units, poll_stream)

    def parse(self, body: Any, stream: str, now: float, result: PollResult) -> SampleTable:
        """`[{client, metrics: {streams: [[ts, count], ...]}}]` to one sample per client (an
        answer already decoded; `poll` decodes and parses a slice at a time instead).

        A client whose answer holds no newer closed bucket keeps the newest one seen, as long as
        a poll with nothing remembered would still have asked for it; a client missing from the
        answer is forgotten (the stream left)."""
        if not isinstance(body, list):
            raise InvalidBody("expected a JSON list of clients")
        reader = _AnswerReader(self, stream, now, result)
        for entry in body:
            reader.add(entry)
        return self._keep(stream, reader)

    async def parse_answer(self, answer: Answer, stream: str, now: float, result: PollResult) -> SampleTable:
        """`parse`, decoding the answer as it goes and giving the event loop back every few
        hundred clients, so a reseller account's answer of a million clients never stalls it;
        what the previous poll kept is then freed a slice at a time (its index, and its clients a
        few chunks at a time: a million strings let go in one call held the loop 7 ms)."""
        reader = _AnswerReader(self, stream, now, result)
        async for entry in answer.json_items("clients"):
            reader.add(entry)
        table = self._keep(stream, reader)
        for shard in reader.seen_index:
            await release(shard)
        seen_chunks = list(reader.seen_clients)
        reader.seen_clients = ()
        await release(seen_chunks, CHUNKS_RELEASED_PER_TURN)
        return table

    def _keep(self, stream: str, reader: _AnswerReader) -> SampleTable:
        newest = reader.newest
        clients = newest.clients()
        self._newest[stream] = newest.remembered(clients)
        if len(newest):
            self._oldest[stream] = reader.oldest
        else:
            self._oldest.pop(stream, None)
        return SampleTable(
            UNIQUE_VIEWERS.name,
            "client",
            (("stream", stream), ("granularity", self.settings.granularity)),
            ChunkedClients(clients),
            newest.counts,
            reader.total,
        )

    def sample(self, count: float, client: str, stream: str) -> Sample:
        return UNIQUE_VIEWERS.sample(count, client=client, stream=stream, granularity=self.settings.granularity)

    async def history(self, fetch: Fetcher, start: float, end: float) -> HistoryResult:
        """Every closed bucket whose end lies in `start`..`end`, stamped at its end (when the live
        poll would first have seen it closed), asked for in requests of at most
        HISTORY_BUCKETS_PER_REQUEST buckets."""
        g = self.granularity_seconds
        first_bucket = -(-(start - g) // g) * g
        windows = []
        while first_bucket + g <= end:
            last_bucket = min(first_bucket + HISTORY_BUCKETS_PER_REQUEST * g, end)
            windows.append((first_bucket, last_bucket))
            first_bucket = last_bucket

        async def history_of(unit: str, result: HistoryResult) -> list[TimedSample]:
            stream_id = None if unit == TOTAL_UNIT else int(unit)
            found: dict[tuple[str, float], TimedSample] = {}
            for window_start, window_end in windows:
                params = self.range_params(stream_id, iso_utc(window_start), iso_utc(window_end))
                async with fetch.get("stream_viewers", self.url, params=params, headers=self.headers()) as answer:
                    raise_unless_ok(answer, vendor_words)
                    async for entry in answer.json_items("clients"):
                        for client, bucket_end, count in self.closed_buckets(entry, result):
                            if start <= bucket_end <= end:
                                found[client, bucket_end] = TimedSample(bucket_end, self.sample(count, client, unit))
            return [found[key] for key in sorted(found)]

        return await history_units(self.active_units(), history_of)

    def closed_buckets(self, entry: Any, result: HistoryResult) -> list[tuple[str, float, float]]:
        """(client, bucket end, count) of every usable bucket of one client of an answer."""
        if not isinstance(entry, dict) or not isinstance(entry.get("metrics"), dict):
            raise InvalidBody("client entry without a metrics object")
        client = str(entry.get("client", ""))
        usable, rejected = usable_points(entry["metrics"].get("streams"))
        result.rejected_points += rejected
        g = self.granularity_seconds
        return [(client, ts + g, count) for ts, count in usable]


INDEX_SHARDS = 64
"""The most dicts a unit's index of clients is split into by hash (an account polled for the
first time gets them all): one dict of a million keys rehashes them all at once when it grows
(~30 ms) and frees them all at once when dropped; a shard is 1/64th of either."""
LARGE_UNIT = 2_000
"""Clients from which a unit keeps its index, and its counts and starts as arrays, between
polls (see `Remembered`)."""

ClientIndex = tuple[dict[str, int], ...]
"""Client -> its position in the columns, in one dict or INDEX_SHARDS dicts by hash."""


CLIENTS_PER_SHARD = 16_384
"""Clients per dict of an index, when the previous poll says how many to expect: a dict this large
is a block of its own (over glibc's mmap threshold), returned to the system when freed, where 64
dicts of 1,500 clients each left holes in the heap after every poll."""


def index_shards(stream: str, expected: int) -> int:
    """Dicts for the index of a unit that had `expected` clients in its previous poll; an account
    polled for the first time gets INDEX_SHARDS (it may hold a million)."""
    if expected == 0 and stream == TOTAL_UNIT:
        return INDEX_SHARDS
    return max(1, min(INDEX_SHARDS, expected // CLIENTS_PER_SHARD))


def position(index: ClientIndex, client: str) -> int | None:
    return index[hash(client) % len(index)].get(client)


CHUNK = 2_000
"""Clients per tuple of the clients a unit keeps between polls (see `Remembered`)."""
CHUNKS_RELEASED_PER_TURN = 10


class ChunkedClients(Sequence[str]):
    """The clients of a table, read from the chunks `Columns` made: no list of a million ids,
    which every full garbage collection during the poll would walk, ever exists."""

    def __init__(self, chunks: tuple[tuple[str, ...], ...]) -> None:
        self.chunks = chunks
        self.size = sum(len(chunk) for chunk in chunks)

    def __len__(self) -> int:
        return self.size

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.size))]
        if not -self.size <= index < self.size:
            raise IndexError(index)
        index %= self.size
        return self.chunks[index // CHUNK][index % CHUNK]

    def __iter__(self) -> Iterator[str]:
        return chain.from_iterable(self.chunks)


@dataclass(slots=True)
class Columns:
    """Per client of one unit, the newest closed bucket: its count and start, same position in
    each column, and the index of those positions, built as the clients are added. The clients
    are kept CHUNK at a time as tuples (see `Remembered`); a known client's id is the string the
    previous poll kept."""

    index: ClientIndex
    chunks: list[tuple[str, ...]] = field(default_factory=list)
    adding: list[str] = field(default_factory=list)
    """The clients added since the last full chunk."""
    counts: array[float] = field(default_factory=lambda: array("d"))
    starts: array[float] = field(default_factory=lambda: array("d"))

    def __len__(self) -> int:
        return len(self.counts)

    def add(self, client: str, count: float, start: float) -> None:
        self.index[hash(client) % len(self.index)][client] = len(self.counts)
        self.counts.append(count)
        self.starts.append(start)
        self.adding.append(client)
        if len(self.adding) == CHUNK:
            self.chunks.append(tuple(self.adding))
            self.adding.clear()

    def clients(self) -> tuple[tuple[str, ...], ...]:
        return (*self.chunks, tuple(self.adding)) if self.adding else tuple(self.chunks)

    def remembered(self, clients: tuple[tuple[str, ...], ...]) -> Remembered:
        """The columns as a provider keeps them between polls (see `Remembered`)."""
        if len(self) > LARGE_UNIT:
            return (clients, self.counts, self.starts, self.index)
        return (clients, tuple(self.counts), tuple(self.starts), None)


Remembered = tuple[tuple[tuple[str, ...], ...], Sequence[float], Sequence[float], ClientIndex | None]
"""What a unit keeps between polls (clients CHUNK at a time, counts, starts, index), in forms the
garbage collector does not walk: tuples of strings or floats stop being tracked after the first
collection that sees them, arrays hold nothing to walk, dicts of strings and ints are never
tracked. A list of a million client ids was walked by every full collection (23 to 42 ms,
measured), one tuple of them by the young collection after it was made (27 ms), while a tuple
of CHUNK is walked once, in well under a millisecond; Columns objects with their lists would be
40k more objects for 10k streams.

An account's index (more than LARGE_UNIT clients) is kept, so the next poll looks clients up
without indexing a million of them again; a stream's few clients are indexed again. The clients
themselves are kept so the next poll reuses the same string for a client it knows: a second copy
of every id per poll made RSS grow by a fifth (interning them instead grew the interpreter's own
table of interned strings by a million entries in one poll: 30 ms rehashes)."""
NOTHING_REMEMBERED: Remembered = ((), (), (), None)


def index_of(remembered: Remembered) -> ClientIndex:
    chunks, _, _, index = remembered
    if index is not None:
        return index
    return ({client: where for where, client in enumerate(client for chunk in chunks for client in chunk)},)


class _AnswerReader:
    """One answer's clients, turned into columns one client at a time (see `Gcore.parse`)."""

    def __init__(self, gcore: Gcore, stream: str, now: float, result: PollResult) -> None:
        self.granularity = gcore.granularity_seconds
        self.now = now
        self.oldest_wanted = (now // self.granularity) * self.granularity - CLOSED_BUCKETS_ASKED * self.granularity
        remembered = gcore._newest.get(stream, NOTHING_REMEMBERED)
        self.seen_index = index_of(remembered)
        self.seen_clients, self.seen_counts, self.seen_starts, _ = remembered
        self.result = result
        self.newest = Columns(tuple({} for _ in range(index_shards(stream, len(self.seen_counts)))))
        self.oldest = math.inf
        self.total = 0.0

    def add(self, entry: Any) -> None:
        if not isinstance(entry, dict) or not isinstance(metrics := entry.get("metrics"), dict):
            raise InvalidBody("client entry without a metrics object")
        newest, rejected = newest_closed_bucket(metrics.get("streams"), self.granularity, self.now)
        self.result.rejected_points += rejected
        client = str(entry.get("client", ""))
        where = position(self.seen_index, client)
        if where is not None:
            client = self.seen_clients[where // CHUNK][where % CHUNK]
            known = (self.seen_starts[where], self.seen_counts[where])
            if known[0] >= self.oldest_wanted and (newest is None or known[0] > newest[0]):
                newest = known
        if newest is None:
            return
        self.newest.add(client, newest[1], newest[0])
        self.oldest = min(self.oldest, newest[0])
        self.total += newest[1]
        self.result.note_timestamp(newest[0])
