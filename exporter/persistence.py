"""The one writer of a source's state: what its counters and its provider (a credit ledger) must
remember across restarts, read when the source starts and queued after each poll for
`StateFiles`, which writes it off the event loop."""

from __future__ import annotations

import asyncio
from pathlib import Path

from exporter.metrics import AudienceStore
from exporter.sources import SourceRuntime
from exporter.state import StateFiles


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

    def save(self, runtime: SourceRuntime) -> None:
        counters = self.store.counter_state(runtime.name)
        provider_state = runtime.provider.export_state()
        if counters["counters"] or provider_state:
            self.files.save(runtime.name, {**counters, "provider": provider_state})
