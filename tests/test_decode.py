"""Large JSON arrays decoded a slice at a time: same values as json.loads, the loop gets turns."""

from __future__ import annotations

import itertools
import json
from typing import Any

import ijson
import pytest

from exporter.decode import (
    EVENTS_PER_SLICE,
    ITEMS_PER_SLICE,
    MAX_DEPTH,
    MAX_OPENINGS_PER_ITEM,
    NotJson,
    json_array_items,
    json_object_list,
)
from exporter.fetch import hand_over_list
from tests.turns import Ticker


def clients(count: int) -> list[dict[str, Any]]:
    return [
        {"client": 1000 + i, "metrics": {"streams": [[1_700_000_000, i % 97], [1_700_000_060, 1.5]]}}
        for i in range(count)
    ]


async def decode(body: bytes) -> list[Any]:
    return [item async for item in json_array_items(body)]


async def test_items_come_out_as_json_loads_reads_them() -> None:
    body = json.dumps(clients(3 * ITEMS_PER_SLICE + 7)).encode()
    assert await decode(body) == json.loads(body)


async def test_numbers_are_int_or_float_never_decimal() -> None:
    [item] = await decode(b'[{"n": 12, "x": 1.25, "big": 4611686018427387904}]')
    assert item == {"n": 12, "x": 1.25, "big": 4611686018427387904}
    assert type(item["n"]) is int and type(item["x"]) is float


async def test_the_event_loop_runs_other_tasks_between_slices() -> None:
    items = 20 * ITEMS_PER_SLICE
    body = json.dumps(clients(items)).encode()
    ticks_seen: list[int] = []
    async with Ticker().running() as ticker:
        async for index, _ in aenumerate(json_array_items(body)):
            if index % ITEMS_PER_SLICE == 0:
                ticks_seen.append(ticker.turns)
    assert len(ticks_seen) == 20
    assert all(later > earlier for earlier, later in itertools.pairwise(ticks_seen))


async def aenumerate(items: Any) -> Any:
    index = 0
    async for item in items:
        yield index, item
        index += 1


async def test_a_lone_surrogate_is_replaced_so_the_rest_still_reads() -> None:
    [item] = await decode(b'[{"client": "a\\ud800b", "n": 1}]')
    assert item["n"] == 1 and item["client"].startswith("a") and item["client"].endswith("b")
    item["client"].encode()


async def test_nesting_deeper_than_the_guard_is_refused_before_it_is_built() -> None:
    depth = 100_000
    with pytest.raises(NotJson, match=f"nested deeper than {MAX_OPENINGS_PER_ITEM}"):
        await decode(b"[" * depth + b"]" * depth)


async def test_many_shallow_items_never_trip_the_nesting_guard() -> None:
    body = json.dumps([[[i], {"a": [i]}] for i in range(50 * MAX_OPENINGS_PER_ITEM)]).encode()
    assert len(await decode(body)) == 50 * MAX_OPENINGS_PER_ITEM


@pytest.mark.parametrize(
    "body",
    [b'{"clients": []}', b"<html>busy</html>", b"", b"[1, 2", b"[1, 2] trailing", b'["\xff"]', b"[NaN]"],
)
async def test_what_is_not_a_json_array_raises_not_json(body: bytes) -> None:
    with pytest.raises(NotJson):
        await decode(body)


async def object_list(body: bytes, path: tuple[str, ...]) -> tuple[Any, list[Any]]:
    handed: list[Any] = []
    return await json_object_list(body, path, handed.append), handed


ENVELOPED = {
    "code": 200,
    "labels": {"app": "demo", "tags": ["a", None, True]},
    "data": clients(3),
    "message": "after the list",
    "empty": {},
}


async def test_an_object_comes_out_as_json_loads_reads_it_with_its_list_handed_over_in_order() -> None:
    value, handed = await object_list(json.dumps(ENVELOPED).encode(), ("data",))
    assert handed == ENVELOPED["data"]
    assert value == {**ENVELOPED, "data": []}
    assert list(value) == list(ENVELOPED)


async def test_a_list_inside_an_object_is_found_by_its_path() -> None:
    body = {"data": {"games": [1, {"n": 2}], "other": [3]}, "games": [4]}
    value, handed = await object_list(json.dumps(body).encode(), ("data", "games"))
    assert handed == [1, {"n": 2}]
    assert value == {"data": {"games": [], "other": [3]}, "games": [4]}


async def test_the_path_holding_an_object_or_nothing_hands_nothing_over() -> None:
    for body in ({"result": {"logDate": "x"}}, {"code": 500}, {"result": [[1]], "x": 1}):
        value, handed = await object_list(json.dumps(body).encode(), ("data",))
        assert value == body and handed == []


@pytest.mark.parametrize("body", [[1, 2], "text", 3, None])
async def test_a_top_that_is_no_object_gives_none_and_hands_nothing_over(body: Any) -> None:
    assert await object_list(json.dumps(body).encode(), ("data",)) == (None, [])


@pytest.mark.parametrize(
    "body",
    [b"<html>busy</html>", b"", b'{"data": [1, 2', b'{"data": []} trailing', b'{"a": "\xff"}', b'{"a": NaN}'],
)
async def test_what_is_not_json_raises_not_json(body: bytes) -> None:
    with pytest.raises(NotJson):
        await object_list(body, ("data",))


@pytest.mark.parametrize("opening", [b"[", b'{"data": [', b'{"a": ['])
async def test_nesting_deeper_than_max_depth_is_refused_whatever_the_top(opening: bytes) -> None:
    depth = 100_000
    with pytest.raises(NotJson, match=f"nested deeper than {MAX_DEPTH}"):
        await object_list(opening + b"[" * depth + b"]" * depth, ("data",))


async def test_the_event_loop_runs_other_tasks_between_slices_of_an_object() -> None:
    body = json.dumps({"data": clients(2000), "code": 200}).encode()
    ticks_at: list[int] = []
    async with Ticker().running() as ticker:
        await json_object_list(body, ("data",), lambda item: ticks_at.append(ticker.turns))
    assert len(set(ticks_at)) >= len(list(ijson.basic_parse(body))) // EVENTS_PER_SLICE - 1


async def test_the_small_answer_path_hands_the_list_over_as_the_sliced_one_does() -> None:
    decoded = json.loads(json.dumps(ENVELOPED))
    handed: list[Any] = []
    hand_over_list(decoded, ("data",), handed.append)
    assert (decoded, handed) == await object_list(json.dumps(ENVELOPED).encode(), ("data",))
