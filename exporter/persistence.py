"""The one writer of a source's state: what its counters and its provider (a credit ledger) must
remember across restarts, read when the source starts and queued after each poll for
`StateFiles`, which writes it off the event loop. The snapshot is taken at once and turned into
its JSON text here, on the event loop, in slices measured in time (`LOOP_SHARE`: a piece's cost
depends on what the provider keeps, a ledger entry or a unit's remembered samples) with the loop
handed back in between: 10k streams' counters took 15 ms in one turn, and encoding in the writer
thread made the loop wait for the GIL (see exporter.state)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter.metrics import AudienceStore, CounterEntry, StoredCounter, counter_json
from exporter.slices import LOOP_SHARE, release
from exporter.sources import SourceRuntime
from exporter.state import StateFiles, json_pieces

COUNTERS_PER_TURN = 1000
"""Counters turned into their JSON form, or let go of once written, between two hand-backs to
the event loop (about 1.5 ms; the JSON forms of 20k counters freed at once held it 7 to 9 ms)."""
CHUNK_CHARS = 64 * 1024
"""Pieces are joined into chunks of about this size for the writer thread."""


@dataclass(frozen=True)
class StateSnapshot:
    """What a source must remember, taken at the end of a poll; later polls never change it (the
    store replaces counter tuples, it does not edit them)."""

    source: str
    counters: list[StoredCounter]
    provider: Any


class Persistence:
    def __init__(self, store: AudienceStore, directory: str) -> None:
        self.store = store
        self.files = StateFiles(directory)

    @property
    def directory(self) -> Path:
        return self.files.directory

    async def move_to(self, directory: str) -> None:
        """A reload changed `global.state_dir`: what is queued is written where it was, later
        reads and writes go to the new place."""
        if directory != str(self.files.directory):
            await self.close()
            self.files = StateFiles(directory)

    async def close(self) -> None:
        """Write what is still queued (in a thread: it waits for the writer)."""
        await asyncio.to_thread(self.files.close)

    def flush(self) -> None:
        """Wait until every queued save is written (for tests and `--once`)."""
        self.files.flush()

    def restore(self, runtime: SourceRuntime) -> None:
        saved = self.files.load(runtime.name)
        self.store.add_source(runtime.identity, saved)
        runtime.provider.restore_state(saved.get("provider"))

    def snapshot(self, runtime: SourceRuntime) -> StateSnapshot | None:
        """The source's state as it stands now, None when there is nothing to keep; cheap (a
        copy of the counters list), so it is taken in the poll's last turn."""
        counters = self.store.counter_entries(runtime.name)
        provider_state = runtime.provider.export_state()
        if not counters and not provider_state:
            return None
        return StateSnapshot(runtime.name, counters, provider_state)

    async def save(self, snapshot: StateSnapshot) -> None:
        """Queue `snapshot` as JSON text, built a slice at a time."""
        counters: list[CounterEntry] = []
        for start in range(0, len(snapshot.counters), COUNTERS_PER_TURN):
            if start:
                await asyncio.sleep(0)
            counters += [counter_json(entry) for entry in snapshot.counters[start : start + COUNTERS_PER_TURN]]
        chunks: list[bytes] = []
        pending: list[str] = []
        size = 0
        for piece in json_pieces({"counters": counters, "provider": snapshot.provider}):
            pending.append(piece)
            size += len(piece)
            if size >= CHUNK_CHARS:
                chunks.append("".join(pending).encode())
                pending, size = [], 0
            await LOOP_SHARE.wait()
        chunks.append("".join(pending).encode())
        self.files.save(snapshot.source, chunks)
        await release(counters, COUNTERS_PER_TURN)
