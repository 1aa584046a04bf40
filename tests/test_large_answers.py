"""One answer with many series: the memory-light table, and every step hands the loop back."""

from __future__ import annotations

import asyncio
import gc
import json
from array import array
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from exporter.families import AUDIENCE_FAMILIES
from exporter.metrics import BLOCK_BYTES, SLICE, AudienceStore, SourceIdentity
from exporter.poll import PollResult, Sample
from exporter.providers.gcore import Gcore, GcoreSettings
from exporter.providers.sample_table import SampleTable
from exporter.slices import RELEASED_PER_TURN, release
from tests.audience import apply, audience_body
from tests.turns import Ticker

NOW = 1_719_836_420.0  # 2024-07-01T12:20:20Z
CLOSED = NOW // 60 * 60 - 60
LABELS = (("stream", "all"), ("granularity", "1m"))


def table(clients: int) -> SampleTable:
    values = array("d", (index % 977 for index in range(clients)))
    return SampleTable("livestream_unique_viewers", "client", LABELS, [f"c{index}" for index in range(clients)], values)


def store() -> AudienceStore:
    audience = AudienceStore(AUDIENCE_FAMILIES, stale_after=300)
    audience.add_source(SourceIdentity("big", "gcore", (("team", 'a"b'), ("stream", "ignored"))))
    return audience


def test_a_table_iterates_indexes_and_compares_as_its_samples() -> None:
    samples = SampleTable("livestream_unique_viewers", "client", LABELS, ["a", "b"], array("d", [5, 7]))
    expected = [
        Sample.of("livestream_unique_viewers", 5, client="a", stream="all", granularity="1m"),
        Sample.of("livestream_unique_viewers", 7, client="b", stream="all", granularity="1m"),
    ]
    assert list(samples) == expected
    assert samples == expected and expected == samples
    assert len(samples) == 2 and samples[1] == expected[1] and samples[-1] == expected[1]
    assert samples[0:1] == expected[:1]
    assert samples != expected[:1]


def test_a_table_renders_exactly_as_its_samples_do() -> None:
    big = table(3 * SLICE + 1)
    from_table, from_list = store(), store()
    apply(from_table, "big", PollResult(samples={"all": big}), now=NOW)
    apply(from_list, "big", PollResult(samples={"all": list(big)}), now=NOW)
    for openmetrics in (False, True):
        assert audience_body(from_table, openmetrics) == audience_body(from_list, openmetrics)
    assert audience_body(from_table, False).count(b"\n") == 2 + 3 * SLICE + 1


def test_a_large_source_is_kept_as_bounded_blocks_in_order() -> None:
    audience = store()
    big = table(40_000)
    apply(audience, "big", PollResult(samples={"all": big}), now=NOW)
    pieces = audience.pieces(False)
    assert len(pieces) > 2
    assert all(len(piece) < 2 * BLOCK_BYTES for piece in pieces)
    lines = b"".join(pieces[1:]).decode().splitlines()
    assert [line.split('client="')[1].split('"')[0] for line in lines] == [f"c{i}" for i in range(40_000)]


async def test_applying_one_large_unit_gives_the_loop_turns_while_rendering() -> None:
    audience = store()
    big = table(40 * SLICE)
    async with Ticker().running() as ticker:
        turns: list[int] = []
        original = audience._render_steps

        def watched(*args: Any) -> Any:
            for step in original(*args):
                turns.append(ticker.turns)
                yield step

        audience._render_steps = watched  # type: ignore[method-assign]
        await audience.apply_sliced("big", PollResult(samples={"all": big}), now=NOW)
    assert len(turns) >= 39
    assert turns[-1] > turns[0]


def gcore(**keys: Any) -> Gcore:
    return Gcore(GcoreSettings.model_validate({"name": "big", "provider": "gcore", "api_key": "1$bench-key", **keys}))


def reseller_answer(clients: int) -> list[dict[str, Any]]:
    """The documented shape, a client per entry, a point per bucket; some clients idle."""
    answer = []
    for index in range(clients):
        points = [[CLOSED - 60, index % 50], [CLOSED, index % 700], [CLOSED + 60, 3]]
        answer.append({"client": 10_000 + index, "metrics": {"streams": points if index % 9 else []}})
    return answer


async def test_a_large_answer_decoded_in_slices_gives_the_samples_of_the_decoded_path(serve_app, fetcher) -> None:
    answer = reseller_answer(5 * 500 + 3)
    body = json.dumps(answer).encode()

    async def viewers(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/streaming/statistics/stream/viewers", viewers)
    base_url = await serve_app(app)
    sliced = gcore(base_url=base_url)
    async with Ticker().running() as ticker:
        result = await sliced.poll(fetcher, datetime.fromtimestamp(NOW, UTC))
        turns = ticker.turns
    decoded = PollResult()
    expected = gcore().parse(answer, "all", NOW, decoded)
    assert result.ok and result.samples["all"] == expected
    assert result.samples["all"].value_total() == sum(sample.value for sample in expected)
    assert len(expected) == len([entry for entry in answer if entry["metrics"]["streams"]])
    assert result.newest_timestamp == decoded.newest_timestamp == CLOSED
    assert turns >= 5


async def test_releasing_a_large_container_empties_it_a_slice_at_a_time() -> None:
    rows: list[Any] = [float(i) for i in range(5 * RELEASED_PER_TURN)]
    index = {str(i): i for i in range(3 * RELEASED_PER_TURN)}
    async with Ticker().running() as ticker:
        await asyncio.sleep(0)
        before = ticker.turns
        await release(rows)
        await release(index)
        turns = ticker.turns - before
    assert rows == [] and index == {}
    assert turns >= 5 + 3 - 1


async def test_the_landing_page_sums_a_table_as_it_sums_its_samples() -> None:
    from exporter.landing import AudienceHistory

    big = table(1000)
    from_table, from_list = AudienceHistory(), AudienceHistory()
    await from_table.record("big", PollResult(samples={"all": big}), now=NOW)
    await from_list.record("big", PollResult(samples={"all": list(big)}), now=NOW)
    assert from_table.figures("big").audience == from_list.figures("big").audience == sum(i % 977 for i in range(1000))


async def test_a_large_answer_remembers_each_clients_newest_bucket_as_the_decoded_path_does(serve_app, fetcher) -> None:
    from exporter.providers.gcore import LARGE_UNIT

    answers = [reseller_answer(LARGE_UNIT + 11)]
    later = [dict(entry, metrics={"streams": [[CLOSED + 60, 1]]}) for entry in answers[0][::2]]
    answers.append(later)
    served = iter(json.dumps(answer).encode() for answer in answers)

    async def viewers(request: web.Request) -> web.Response:
        return web.Response(body=next(served), content_type="application/json")

    app = web.Application()
    app.router.add_get("/streaming/statistics/stream/viewers", viewers)
    sliced, decoded = gcore(base_url=await serve_app(app)), gcore()
    for answer in answers:
        result = await sliced.poll(fetcher, datetime.fromtimestamp(NOW + 30, UTC))
        expected = decoded.parse(answer, "all", NOW + 30, PollResult())
        assert result.ok and list(result.samples["all"]) == list(expected)
    assert len(expected) == len([entry for entry in later if (entry["client"] - 10_000) % 9])


def test_what_an_account_remembers_between_polls_gives_the_garbage_collector_nothing_to_walk() -> None:
    from exporter.providers.gcore import INDEX_SHARDS, LARGE_UNIT

    provider = gcore()
    provider.parse(reseller_answer(2 * LARGE_UNIT), "all", NOW + 30, PollResult())
    chunks, counts, starts, index = provider._newest["all"]
    gc.collect()
    walked = [kept for kept in (chunks, *chunks, index, *index, counts, starts) if gc.is_tracked(kept)]
    assert sum(len(gc.get_referents(kept)) for kept in walked) <= INDEX_SHARDS + len(walked)
    assert sum(len(shard) for shard in index) == sum(map(len, chunks)) == len(counts) > LARGE_UNIT


def test_a_known_client_keeps_the_string_of_the_previous_poll() -> None:
    provider = gcore()
    first = provider.parse(reseller_answer(100), "all", NOW + 30, PollResult())
    again = provider.parse(reseller_answer(100), "all", NOW + 30, PollResult())
    assert len(again) == len(first) > 0
    assert all(new is old for new, old in zip(again.label_values, first.label_values, strict=True))


def test_many_small_tables_are_joined_into_few_pieces() -> None:
    audience = store()
    small = {str(unit): table(2) for unit in range(1000)}
    apply(audience, "big", PollResult(samples=small), now=NOW)
    assert len(audience.pieces(False)) == 2


def test_a_tables_clients_read_from_their_chunks_by_position_and_in_order() -> None:
    from exporter.providers.gcore import CHUNK, ChunkedClients

    names = [f"c{n}" for n in range(2 * CHUNK + 5)]
    clients = ChunkedClients((tuple(names[:CHUNK]), tuple(names[CHUNK : 2 * CHUNK]), tuple(names[2 * CHUNK :])))
    assert list(clients) == names
    assert len(clients) == len(names)
    assert [clients[0], clients[CHUNK], clients[-1]] == [names[0], names[CHUNK], names[-1]]
    assert clients[CHUNK - 1 : CHUNK + 2] == names[CHUNK - 1 : CHUNK + 2]
    with pytest.raises(IndexError):
        clients[len(names)]
