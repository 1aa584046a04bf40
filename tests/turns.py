"""Counting the event loop's turns: proof that work handed the loop back between two points."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Ticker:
    """A task that counts the turns of the event loop it gets while some work runs."""

    def __init__(self) -> None:
        self.turns = 0

    async def _run(self) -> None:
        while True:
            self.turns += 1
            await asyncio.sleep(0)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Ticker]:
        """Counting from zero once the task has started, until the block ends."""
        task = asyncio.ensure_future(self._run())
        await asyncio.sleep(0)
        self.turns = 0
        try:
            yield self
        finally:
            task.cancel()
