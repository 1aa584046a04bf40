"""The end of a large poll hands the event loop back: the landing page's figures, the state
snapshot, the poll's samples let go, and the rendering of many small units each take turns, with
the same outcome as in one go; and a poll cancelled while its bookkeeping runs still finishes it."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

from exporter.families import AUDIENCE_FAMILIES
from exporter.landing import SAMPLES_PER_TURN, AudienceHistory
from exporter.metrics import SLICE, AudienceStore, SourceIdentity
from exporter.persistence import COUNTERS_PER_TURN, Persistence, StateSnapshot
from exporter.poll import PollResult, Sample
from exporter.scheduler import finished_even_if_cancelled
from exporter.slices import release
from tests.audience import counter_state
from tests.turns import Ticker

SESSIONS = "livestream_sessions_total"
NOW = datetime(2024, 8, 1, 12, tzinfo=UTC).timestamp()
DAY = "2024-08-01"


def viewers(units: int) -> PollResult:
    return PollResult(
        samples={f"s{i}": [Sample.of("livestream_concurrent_viewers", i, stream=f"s{i}")] for i in range(units)}
    )


async def test_the_landing_page_sums_a_large_poll_in_turns_to_the_same_audience() -> None:
    units = 5 * SAMPLES_PER_TURN
    history = AudienceHistory()
    async with Ticker().running() as ticker:
        await history.record("big", viewers(units), now=NOW)
    assert ticker.turns >= 4
    assert history.figures("big").audience == sum(range(units))


async def test_the_landing_page_counts_samples_not_units_between_turns() -> None:
    units = SAMPLES_PER_TURN // 10
    many = PollResult(
        samples={
            f"s{i}": [Sample.of("livestream_chat_messages", n, stream=f"s{i}", n=str(n)) for n in range(50)]
            for i in range(units)
        }
    )
    history = AudienceHistory()
    async with Ticker().running() as ticker:
        await history.record("sc", many, now=NOW)
    assert ticker.turns >= 4


async def test_a_small_poll_is_summed_without_handing_the_loop_back() -> None:
    history = AudienceHistory()
    async with Ticker().running() as ticker:
        await history.record("small", viewers(SAMPLES_PER_TURN), now=NOW)
    assert ticker.turns == 0
    assert history.figures("small").audience == sum(range(SAMPLES_PER_TURN))


async def test_a_large_counter_snapshot_is_saved_in_turns_as_the_store_states_it(tmp_path: Path) -> None:
    store = AudienceStore(AUDIENCE_FAMILIES, stale_after=1e9)
    store.add_source(SourceIdentity("cf", "cloudflare"))
    units = 5 * COUNTERS_PER_TURN
    counted = PollResult(samples={f"u{i}": [Sample.of(SESSIONS, i, DAY, app=f"u{i}")] for i in range(units)})
    await store.apply_sliced("cf", counted, NOW)
    persistence = Persistence(store, str(tmp_path))
    snapshot = StateSnapshot("cf", store.counter_entries("cf"), {"ledger": [1, 2]})
    async with Ticker().running() as ticker:
        await persistence.save(snapshot)
    persistence.flush()
    assert ticker.turns >= 4
    written = json.loads((tmp_path / "cf.json").read_text())
    assert written == json.loads(json.dumps({**counter_state(store, "cf"), "provider": {"ledger": [1, 2]}}))
    assert len(written["counters"]) == units
    await persistence.close()


async def test_the_json_forms_of_a_large_counter_snapshot_are_let_go_in_turns_once_queued(tmp_path: Path) -> None:
    store = AudienceStore(AUDIENCE_FAMILIES, stale_after=1e9)
    store.add_source(SourceIdentity("cf", "cloudflare"))
    counted = PollResult(
        samples={f"u{i}": [Sample.of(SESSIONS, i, DAY, app=f"u{i}")] for i in range(5 * COUNTERS_PER_TURN)}
    )
    await store.apply_sliced("cf", counted, NOW)
    persistence = Persistence(store, str(tmp_path))
    queue = persistence.files.save
    turns_when_queued: list[int] = []
    async with Ticker().running() as ticker:

        def queued(source: str, pieces: list[bytes]) -> None:
            turns_when_queued.append(ticker.turns)
            queue(source, pieces)

        persistence.files.save = queued  # type: ignore[method-assign]
        await persistence.save(StateSnapshot("cf", store.counter_entries("cf"), None))
    assert ticker.turns - turns_when_queued[0] >= 4
    await persistence.close()


async def test_a_large_provider_state_is_turned_into_json_in_turns(tmp_path: Path) -> None:
    store = AudienceStore(AUDIENCE_FAMILIES, stale_after=1e9)
    store.add_source(SourceIdentity("sc", "streamscharts"))
    persistence = Persistence(store, str(tmp_path))
    unit = tuple(("livestream_chat_messages", (("channel", f"c{n}"),), float(n), "") for n in range(30))
    provider = {"last": {f"twitch/c{i}/s/chat": unit for i in range(4000)}, "finished": []}
    async with Ticker().running() as ticker:
        await persistence.save(StateSnapshot("sc", [], provider))
    persistence.flush()
    assert ticker.turns >= 4
    assert json.loads((tmp_path / "sc.json").read_text())["provider"] == json.loads(json.dumps(provider))
    await persistence.close()


async def test_rendering_many_small_units_hands_the_loop_back_every_slice_of_lines() -> None:
    lines_per_unit = 25
    units = 4 * SLICE // lines_per_unit
    samples = {
        f"u{unit}": [
            Sample.of("livestream_concurrent_viewers", n, stream=f"u{unit}", n=str(n)) for n in range(lines_per_unit)
        ]
        for unit in range(units)
    }
    store = AudienceStore(AUDIENCE_FAMILIES, stale_after=1e9)
    store.add_source(SourceIdentity("s", "lls"))
    async with Ticker().running() as ticker:
        await store.apply_sliced("s", PollResult(samples=samples), NOW)
    counting_turns = units * (lines_per_unit + 1) // SLICE
    assert ticker.turns >= counting_turns + 4


async def test_the_samples_of_a_large_poll_are_let_go_in_turns() -> None:
    samples = viewers(5000).samples
    async with Ticker().running() as ticker:
        await release(samples, 1000)
    assert samples == {}
    assert ticker.turns >= 4


async def test_bookkeeping_cancelled_midway_runs_to_its_end_before_the_cancellation_goes_on() -> None:
    steps: list[int] = []

    async def bookkeeping() -> None:
        for step in range(5):
            steps.append(step)
            await asyncio.sleep(0)

    poll = asyncio.ensure_future(finished_even_if_cancelled(bookkeeping()))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    poll.cancel()
    results = await asyncio.gather(poll, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert steps == [0, 1, 2, 3, 4]
