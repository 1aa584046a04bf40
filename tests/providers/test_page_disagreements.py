"""Where a vendor's page disagrees with itself (its table or schema says one shape, its example
shows another), a poll of either shape works. One test per shape, then a round trip through
the simulator serving the shape its example does not show.

- NAVER: `result` is an Object (table) or a list of points (example); `code` a String (table)
  or the number 200 (example).
- Gcore: `streams` is an array of int64, timestamp then count (schema), or a list of
  [timestamp, count] pairs (example).
- LLS: a point's `timestamp` has the type Timestamp (table), read as Unix time, or is written
  `20250518T173000Z` (examples).
- Streams Charts: a game's `airtime_in_m` and `followers_gain` are strings in the games example,
  numbers everywhere else.
"""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from exporter.demo.gcore import GcoreSimulator
from exporter.demo.lls import LlsSimulator
from exporter.demo.naver import NaverSimulator
from exporter.poll import InvalidBody, PollResult
from exporter.providers.gcore import Gcore, GcoreSettings
from exporter.providers.lls import Lls, LlsSettings, Query
from exporter.providers.naver import Naver, NaverSettings
from exporter.providers.streamscharts import Parser, Unit
from tests.conftest import fixture_json

NAVER_EXAMPLE_NEWEST = datetime(2025, 10, 9, 7, 23, tzinfo=UTC).timestamp()
GCORE_EXAMPLE_LAST = 1640995610
LLS_EXAMPLE_POINT = datetime(2025, 5, 18, 17, 30, tzinfo=UTC).timestamp()


def naver(**keys: Any) -> Naver:
    return Naver(
        NaverSettings.model_validate(
            {"name": "n", "provider": "naver", "api_key": "k-secret", "project_id": "c", **keys}
        )
    )


def gcore(**keys: Any) -> Gcore:
    return Gcore(GcoreSettings.model_validate({"name": "g", "provider": "gcore", "api_key": "1$key-abcdef", **keys}))


def lls(**keys: Any) -> Lls:
    settings = {
        "name": "l",
        "provider": "lls",
        "access_key_id": "id",
        "access_key_secret": "s3cret-value",
        "domain": "d",
    }
    return Lls(LlsSettings.model_validate({**settings, **keys}))


def naver_values(body: Any) -> tuple[list[float], float | None]:
    result = PollResult()
    samples = naver().parse(body, NAVER_EXAMPLE_NEWEST + 60, result)
    return [sample.value for sample in samples], result.newest_timestamp


# --- NAVER --------------------------------------------------------------------------------------


def test_naver_result_as_the_examples_list_publishes_its_newest_point() -> None:
    body = {"code": 200, "result": [{"currentViewerCnt": 9, "logDate": "2025-10-09 16:23:00"}]}
    assert naver_values(body) == ([9.0], NAVER_EXAMPLE_NEWEST)


def test_naver_result_as_the_tables_object_publishes_that_point() -> None:
    body = {"code": 200, "result": {"currentViewerCnt": 9, "logDate": "2025-10-09 16:23:00"}}
    assert naver_values(body) == ([9.0], NAVER_EXAMPLE_NEWEST)


def test_naver_code_as_the_tables_string_is_a_success() -> None:
    body = {"code": "200", "result": [{"currentViewerCnt": 9, "logDate": "2025-10-09 16:23:00"}]}
    assert naver_values(body) == ([9.0], NAVER_EXAMPLE_NEWEST)


def test_naver_result_object_with_an_unusable_point_is_a_counted_rejection() -> None:
    result = PollResult()
    assert naver().parse({"code": 200, "result": {"logDate": "2025-10-09 16:23:00"}}, 0.0, result) == []
    assert result.rejected_points == 1


async def test_naver_simulator_serving_the_tables_shape_round_trips(serve_app, fetcher) -> None:
    simulator = NaverSimulator(api_key="k-secret", project_id="c", table_shape=True)
    base_url = await serve_app(simulator.app())
    result = await naver(base_url=base_url).poll(fetcher, datetime.now(UTC))
    assert result.ok, result.failures
    assert len(result.samples["total"]) == 1
    last_whole_minute = time.time() // 60 * 60 - 60
    assert result.newest_timestamp in (last_whole_minute, last_whole_minute - 60)


def test_naver_result_as_an_object_without_a_points_keys_is_an_invalid_body() -> None:
    with pytest.raises(InvalidBody):
        naver().parse({"code": 200, "result": {}}, 0.0, PollResult())


# --- Gcore --------------------------------------------------------------------------------------


def gcore_newest(streams: list[Any]) -> tuple[list[float], int]:
    body = copy.deepcopy(fixture_json("gcore/stream_stat_example.json"))
    body[0]["metrics"]["streams"] = streams
    result = PollResult()
    samples = gcore().parse(body, "all", GCORE_EXAMPLE_LAST + 60, result)
    return [sample.value for sample in samples], result.rejected_points


def test_gcore_streams_as_the_examples_pairs() -> None:
    pairs = fixture_json("gcore/stream_stat_example.json")[0]["metrics"]["streams"]
    assert gcore_newest(pairs) == ([20.0], 0)


def test_gcore_streams_as_the_schemas_flat_int64_array() -> None:
    pairs = fixture_json("gcore/stream_stat_example.json")[0]["metrics"]["streams"]
    assert gcore_newest([value for pair in pairs for value in pair]) == ([20.0], 0)


def test_gcore_flat_array_with_a_lone_trailing_value_rejects_only_that_value() -> None:
    assert gcore_newest([1640995510, 20, 1640995610, 30, 1640995710]) == ([30.0], 1)


async def test_gcore_simulator_serving_the_schemas_flat_array_round_trips(serve_app, fetcher) -> None:
    simulator = GcoreSimulator(api_key="1$key-abcdef", flat_streams=True)
    base_url = await serve_app(simulator.app())
    result = await gcore(base_url=base_url, stream_ids=[101]).poll(fetcher, datetime.now(UTC))
    assert result.ok, result.failures
    assert [sample.value > 0 for sample in result.samples["101"]] == [True]
    assert result.rejected_points == 0


# --- LLS ----------------------------------------------------------------------------------------


def lls_newest(timestamp: Any) -> tuple[list[float], float | None, int]:
    result = PollResult()
    body = {"domain": "d", "data": [{"timestamp": timestamp, "concurrentViewers": 1283}]}
    samples = lls().parse(body, Query(None, None), result)
    return [sample.value for sample in samples], result.newest_timestamp, result.rejected_points


def test_lls_timestamp_as_the_examples_text() -> None:
    assert lls_newest("20250518T173000Z") == ([1283.0], LLS_EXAMPLE_POINT, 0)


@pytest.mark.parametrize("timestamp", [int(LLS_EXAMPLE_POINT), LLS_EXAMPLE_POINT, int(LLS_EXAMPLE_POINT) * 1000])
def test_lls_timestamp_as_unix_seconds_or_milliseconds(timestamp: float) -> None:
    assert lls_newest(timestamp) == ([1283.0], LLS_EXAMPLE_POINT, 0)


@pytest.mark.parametrize("timestamp", [0, -1, True, 1e30, float("nan")])
def test_lls_numeric_timestamp_that_is_no_time_is_rejected(timestamp: Any) -> None:
    assert lls_newest(timestamp) == ([], None, 1)


async def test_lls_simulator_serving_unix_timestamps_round_trips(serve_app, fetcher) -> None:
    simulator = LlsSimulator(access_key_id="id", access_key_secret="s3cret-value", unix_timestamps=True)
    base_url = await serve_app(simulator.app())
    result = await lls(base_url=base_url, domain="live.example.com", app="demoapp").poll(fetcher, datetime.now(UTC))
    assert result.ok, result.failures
    assert result.rejected_points == 0
    assert result.newest_timestamp is not None and time.time() - result.newest_timestamp < 600


# --- Streams Charts -----------------------------------------------------------------------------


def test_streamscharts_game_figures_as_text_or_numbers_read_the_same() -> None:
    unit = Unit("twitch", "jynxzi", "317797555547", "games", carrier=True)
    as_text = fixture_json("streamscharts/games.json")["data"]
    as_numbers = copy.deepcopy(as_text)
    for game in as_numbers["all_stream_games"]:
        game["airtime_in_m"], game["followers_gain"] = int(game["airtime_in_m"]), int(game["followers_gain"])
    assert isinstance(as_text["all_stream_games"][0]["airtime_in_m"], str)
    assert Parser(unit, "").parse(as_text) == Parser(unit, "").parse(as_numbers)
