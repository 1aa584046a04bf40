"""A reload reads and validates the config in a worker thread: the event loop keeps serving
while a large config is parsed (30k streams took 2.2 s, all of it on the loop before)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from exporter.cli import Exporter, Setup
from exporter.config import load_config
from exporter.logs import Redactor


async def test_the_loop_keeps_turning_while_a_reload_reads_the_config(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"global: {{state_dir: '{tmp_path}'}}\n"
        "sources:\n"
        "  - {name: g, provider: gcore, api_key: 'key-0123456789', base_url: 'http://127.0.0.1:9', stream_ids: [1]}\n"
    )
    config = load_config(str(path))
    exporter = Exporter(config, Redactor())
    await exporter.scheduler.open()
    setup = Setup(config, None, str(path))
    reread = setup.reread
    released = threading.Event()
    released_while_reading: list[bool] = []

    def reread_once_the_loop_has_turned() -> object:
        released_while_reading.append(released.wait(timeout=2))
        return reread()

    setup.reread = reread_once_the_loop_has_turned  # type: ignore[method-assign]

    async def release_after_some_turns() -> None:
        for _ in range(3):
            await asyncio.sleep(0)
        released.set()

    try:
        problems, _ = await asyncio.gather(exporter.reload(setup), release_after_some_turns())
    finally:
        await exporter.scheduler.close()
    assert problems == []
    assert released_while_reading == [True]
