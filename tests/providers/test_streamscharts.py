"""Streams Charts: the page's example bodies, platform exclusions, request shapes, credits and budget,
ended streams, testing mode, the single-channel route, and the simulator."""

from __future__ import annotations

import copy
import gc
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from exporter.config import ConfigError, load_config
from exporter.demo.streamscharts import StreamsChartsSimulator
from exporter.poll import WHOLE_SOURCE, PollResult, Sample, ShardView
from exporter.providers.cloudflare import Cloudflare
from exporter.providers.streamscharts import (
    CHAT_METRICS,
    EXTRA_METRICS,
    GAME_METRICS,
    MAX_LABEL_CHARS,
    STANDARD_METRICS,
    SUBS_METRICS,
    StreamsCharts,
    StreamsChartsSettings,
)
from tests.conftest import REPO_ROOT, fixture_json

CLIENT_ID, TOKEN = "cid-0123456789", "tok-abcdefghij"
SHROUD = {"platform": "twitch", "channel": "shroud", "stream_id": "41976921163"}
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SHROUD_LABELS = {"platform": "twitch", "channel": "shroud", "stream": "41976921163"}


def settings(**keys: Any) -> StreamsChartsSettings:
    return StreamsChartsSettings.model_validate(
        {"name": "sc", "provider": "streamscharts", "client_id": CLIENT_ID, "token": TOKEN, **keys}
    )


def provider(shard: ShardView = WHOLE_SOURCE, **keys: Any) -> StreamsCharts:
    keys.setdefault("streams", [SHROUD])
    return StreamsCharts(settings(**keys), shard)


def values(samples: list[Sample], **common: str) -> dict[str, float]:
    """`name{extra labels}` -> value, for samples whose labels include `common`."""
    found = {}
    for sample in samples:
        labels = dict(sample.labels)
        if any(labels.get(k) != v for k, v in common.items()):
            continue
        extra = ",".join(f"{k}={v}" for k, v in labels.items() if k not in ("platform", "channel", "stream"))
        found[sample.name + (f"{{{extra}}}" if extra else "")] = sample.value
    return found


def parse(fixture: str, metric_set: str, stream: dict[str, str] = SHROUD, **keys: Any) -> tuple[list[Sample], int]:
    streams_charts = provider(streams=[stream], metric_sets=[metric_set], **keys)
    [unit] = streams_charts.all_units
    result = PollResult()
    samples, _ = streams_charts.parse(unit, fixture_json(f"streamscharts/{fixture}"), NOW, result)
    return samples, result.rejected_points


class FakeVendor:
    """Answers every Streams Charts route with a given body per metric set; records requests."""

    def __init__(self, bodies: dict[str, Any] | None = None, status: int = 200) -> None:
        self.bodies = bodies or {}
        self.status = status
        self.requests: list[tuple[str, dict[str, str], dict[str, str]]] = []

    @staticmethod
    def metric_set(tail: str) -> str:
        parts = tail.split("/")
        if len(parts) == 1:
            return "channel"
        return {2: "standard", 3: "extra"}.get(len(parts) - 1 if parts[1] == "streams-extra" else 2, parts[-1])

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.query), dict(request.headers)))
        tail = request.match_info["tail"]
        body = self.bodies.get(self.metric_set(tail), {"message": "no body"})
        return web.json_response(body, status=self.status)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/jazz/channels/{tail:.*}", self.handle)
        return app


def live(body: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    changed["data"]["stream_end"] = None
    return changed


# --- the page's example bodies ---------------------------------------------------------------


def test_standard_example_in_base_units_keyed_on_the_configured_stream() -> None:
    samples, rejected = parse("standard.json", "standard")
    assert values(samples) == {
        "livestream_viewer_seconds_total": 115906 * 3600,
        "livestream_airtime_seconds": 515 * 60,
        "livestream_peak_viewers": 17819,
        "livestream_average_viewers": 13504,
        "livestream_followers_gained_total": 676,
        "livestream_top_game_watched_ratio{game=Diablo IV}": 0.817,
        "livestream_stream_info{title=making my sorc NOW also check out !announcement,language=en,"
        "top_game=Diablo IV,channel_id=37402112}": 1,
    }
    assert all(dict(s.labels).items() >= SHROUD_LABELS.items() for s in samples)
    assert rejected == 0


def test_stream_counters_are_one_part_for_the_stream_lifetime() -> None:
    samples, _ = parse("standard.json", "standard")
    assert {s.part for s in samples} == {""}


def test_extra_example_adds_the_extra_metrics_to_the_standard_ones() -> None:
    samples, _ = parse("extra.json", "extra")
    got = values(samples)
    assert got["livestream_viewer_seconds_total"] == 115906 * 3600
    assert {k: v for k, v in got.items() if k not in values(parse("standard.json", "standard")[0])} == {
        "livestream_live_views_total": 464087,
        "livestream_stream_unique_viewers": 176871,
        "livestream_unique_authenticated_viewers": 147068,
        "livestream_peak_authenticated_viewers": 13674,
        "livestream_authenticated_average_view_duration_seconds": 43 * 60,
        "livestream_authenticated_viewers_ratio": 0.83,
        "livestream_viewers_from_last_stream_ratio": 0.694,
        "livestream_returned_viewers_ratio": 0.353,
        "livestream_estimated_audience": 166405,
        "livestream_estimated_audience_average_view_duration_seconds": 42 * 60,
    }


def test_games_example_gives_per_game_series_from_numbers_sent_as_strings() -> None:
    jynxzi = {"platform": "twitch", "channel": "jynxzi", "stream_id": "317797555547"}
    samples, rejected = parse("games.json", "games", stream=jynxzi)
    got = values(samples)
    assert got["livestream_viewer_seconds_total"] == 204840 * 3600
    assert got["livestream_top_game_watched_ratio{game=Rocket League}"] == 0.79
    assert {k: v for k, v in got.items() if "Rocket League" in k and k.startswith("livestream_game_")} == {
        "livestream_game_viewer_seconds_total{game=Rocket League}": 161731 * 3600,
        "livestream_game_peak_viewers{game=Rocket League}": 64933,
        "livestream_game_average_viewers{game=Rocket League}": 41293,
        "livestream_game_airtime_seconds{game=Rocket League}": 235 * 60,
        "livestream_game_followers_gained_total{game=Rocket League}": 3044,
    }
    assert got["livestream_game_airtime_seconds{game=Geometry Dash}"] == 15 * 60
    assert rejected == 0


def test_two_games_whose_names_differ_only_past_the_label_limit_are_one_series_and_one_rejection() -> None:
    jynxzi = {"platform": "twitch", "channel": "jynxzi", "stream_id": "317797555547"}
    streams_charts = provider(streams=[jynxzi], metric_sets=["games"])
    [unit] = streams_charts.all_units
    body = fixture_json("streamscharts/games.json")
    games = body["data"]["all_stream_games"]
    games[0]["name"], games[1]["name"] = "N" * MAX_LABEL_CHARS + "a", "N" * MAX_LABEL_CHARS + "b"
    result = PollResult()
    samples, _ = streams_charts.parse(unit, body, NOW, result)
    cut = "N" * (MAX_LABEL_CHARS - 1) + "…"
    assert (
        sum(1 for sample in samples if sample.name == "livestream_game_peak_viewers" and ("game", cut) in sample.labels)
        == 1
    )
    assert result.rejected_points == 1


def test_subs_example() -> None:
    samples, _ = parse("subs.json", "subs")
    assert {k: v for k, v in values(samples).items() if "info" not in k} == {
        "livestream_subscriptions_total": 78,
        "livestream_new_subscriptions_total": 34,
        "livestream_resubscriptions_total": 39,
        "livestream_paid_subscriptions_total": 73,
        "livestream_gifted_subscriptions_total": 5,
        "livestream_tier_subscriptions_total{tier=prime}": 48,
        "livestream_tier_subscriptions_total{tier=1}": 29,
        "livestream_tier_subscriptions_total{tier=2}": 0,
        "livestream_tier_subscriptions_total{tier=3}": 1,
        "livestream_subscription_income_min_usd": 147,
        "livestream_subscription_income_max_usd": 210,
    }


def test_twitch_chat_example() -> None:
    samples, _ = parse("chat_twitch.json", "chat")
    assert {k: v for k, v in values(samples).items() if "info" not in k} == {
        "livestream_chat_messages_total": 9728,
        "livestream_chat_words_total": 64447,
        "livestream_chat_active_chatters": 3579,
        "livestream_chat_passive_chatters": 143478,
        "livestream_chat_messages_per_chatter": 2.7,
        "livestream_chat_engagement_ratio": 0.024337501785,
        "livestream_chat_single_message_chatters": 2198,
        "livestream_chat_multi_message_chatters": 1381,
        "livestream_chat_cheer_messages_total": 1,
        "livestream_chat_cheer_chatters": 1,
        "livestream_chat_cheer_amount_total": 1000,
        "livestream_chat_cheer_income_usd": 10,
        "livestream_chat_cheer_amount_per_message": 1000,
        "livestream_chat_cheer_amount_per_chatter": 1000,
    }


def test_youtube_chat_example_has_only_the_fields_youtube_sends() -> None:
    speed = {"platform": "youtube", "channel": "UCWsDFcIhY2DBi3GB5uykGXA", "stream_id": "10203361939495629149"}
    samples, _ = parse("chat_youtube.json", "chat", stream=speed)
    got = {k: v for k, v in values(samples).items() if "info" not in k}
    assert got == {
        "livestream_chat_messages_total": 101879,
        "livestream_chat_words_total": 324669,
        "livestream_chat_active_chatters": 17866,
        "livestream_chat_messages_per_chatter": 5.7,
        "livestream_chat_single_message_chatters": 8282,
        "livestream_chat_multi_message_chatters": 9584,
        "livestream_chat_active_chatters_to_viewers_ratio": 0.011,
    }


def test_a_set_without_standard_fields_still_describes_the_stream() -> None:
    samples, _ = parse("subs.json", "subs")
    [info] = [s for s in samples if s.name == "livestream_stream_info"]
    assert dict(info.labels)["top_game"] == ""
    assert dict(info.labels)["title"] == "making my sorc NOW also check out !announcement"


@pytest.mark.parametrize("platform", ["nimo", "bigo", "nonolive", "afreecatv", "chzzk", "soop", "steam"])
def test_platforms_without_followers_give_no_followers_series_even_if_the_body_has_one(platform: str) -> None:
    samples, _ = parse("standard.json", "standard", stream={**SHROUD, "platform": platform})
    names = {s.name for s in samples}
    assert "livestream_followers_gained_total" not in names
    assert "livestream_peak_viewers" in names and "livestream_top_game_watched_ratio" in names


def test_rumble_gives_no_followers_and_no_top_game() -> None:
    samples, _ = parse("standard.json", "standard", stream={**SHROUD, "platform": "rumble"})
    names = {s.name for s in samples}
    assert not names & {"livestream_followers_gained_total", "livestream_top_game_watched_ratio"}
    [info] = [s for s in samples if s.name == "livestream_stream_info"]
    assert dict(info.labels)["top_game"] == ""


def test_missing_or_null_fields_give_no_series_and_malformed_ones_are_rejected() -> None:
    body = {"data": {"hours_watched": None, "peak_viewers": "lots", "average_viewers": 10}}
    streams_charts = provider()
    result = PollResult()
    samples, _ = streams_charts.parse(streams_charts.all_units[0], body, NOW, result)
    assert [s.name for s in samples if s.name != "livestream_stream_info"] == ["livestream_average_viewers"]
    assert result.rejected_points == 1


def test_a_body_without_a_data_object_is_invalid() -> None:
    streams_charts = provider()
    with pytest.raises(Exception, match="data") as caught:
        streams_charts.parse(streams_charts.all_units[0], {"error": "x"}, NOW, PollResult())
    assert caught.value.code == "invalid_body"


# --- units ------------------------------------------------------------------------------------


def test_one_unit_per_stream_and_set_its_platform_has() -> None:
    streams_charts = provider(
        streams=[SHROUD, {"platform": "kick", "channel": "xqc", "stream_id": "9"}],
        channels=[{"platform": "twitch", "channel": "shroud"}],
        metric_sets=["standard", "subs", "chat"],
    )
    assert streams_charts.units() == [
        "twitch/shroud/41976921163/standard",
        "twitch/shroud/41976921163/subs",
        "twitch/shroud/41976921163/chat",
        "kick/xqc/9/standard",
        "kick/xqc/9/chat",
        "twitch/shroud/today/standard",
    ]


def test_standard_is_not_called_when_games_or_extra_bring_its_fields() -> None:
    streams_charts = provider(metric_sets=["standard", "extra", "games"])
    assert streams_charts.units() == ["twitch/shroud/41976921163/games", "twitch/shroud/41976921163/extra"]
    assert [u.carrier for u in streams_charts.all_units] == [True, False]


def test_non_carrier_extra_unit_gives_only_extra_series() -> None:
    streams_charts = provider(metric_sets=["games", "extra"])
    extra_unit = streams_charts.all_units[1]
    samples, _ = streams_charts.parse(extra_unit, fixture_json("streamscharts/extra.json"), NOW, PollResult())
    assert "livestream_peak_viewers" not in {s.name for s in samples}
    assert "livestream_live_views_total" in {s.name for s in samples}


# --- config -----------------------------------------------------------------------------------


def config_errors(tmp_path: Path, source: dict[str, Any]) -> list[str]:
    path = tmp_path / "config.yaml"
    base = {"name": "sc", "provider": "streamscharts", "client_id": "cid-0123456789", "token": "tok-abcdefghij"}
    path.write_text(json.dumps({"sources": [{**base, **source}]}))
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    return [line.replace(str(path), "config.yaml") for line in caught.value.lines]


BAD = [
    (
        {"streams": [{"platform": "youtube", "channel": "IShowSpeed", "stream_id": "1"}]},
        'config.yaml: sources[0] "sc": streams[0].channel: YouTube channels are addressed by channel ID '
        "(UC followed by 22 characters)",
    ),
    ({}, 'config.yaml: sources[0] "sc": streams: at least one entry in streams or channels is required'),
    (
        {"streams": [{"platform": "youtube", "channel": "UCWsDFcIhY2DBi3GB5uykGXA", "stream_id": "1"}],
         "metric_sets": ["subs"]},
        'config.yaml: sources[0] "sc": metric_sets: subs applies to none of the streams (it is Twitch only)',
    ),
    (
        {"streams": [SHROUD, SHROUD]},
        'config.yaml: sources[0] "sc": streams[1]: duplicate of streams[0]',
    ),
    ({"streams": [SHROUD], "credits_budget": 0}, 'config.yaml: sources[0] "sc": credits_budget: must be greater than 0'),
    (
        {"streams": [SHROUD], "metric_sets": ["standard", "standard"]},
        'config.yaml: sources[0] "sc": metric_sets: names a set twice',
    ),
    (
        {"streams": [{**SHROUD, "platform": "mixer"}]},
        'config.yaml: sources[0] "sc": streams[0].platform: must be one of twitch, youtube, kick, rumble, trovo, '
        "nimo, bigo, nonolive, afreecatv, mildom, chzzk, soop, steam",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("source", "expected"), BAD, ids=[line.split(": ", 2)[2][:40] for _, line in BAD])
def test_bad_streamscharts_config_reports_exact_line(tmp_path: Path, source: dict[str, Any], expected: str) -> None:
    assert config_errors(tmp_path, source) == [expected]


def test_a_stream_id_written_as_a_number_is_refused_with_a_hint_to_quote_it(tmp_path: Path) -> None:
    """Values are never converted between kinds (see docs/configuration.md)."""
    assert config_errors(tmp_path, {"streams": [{**SHROUD, "stream_id": 41976921163}]}) == [
        'config.yaml: sources[0] "sc": streams[0].stream_id: must be a valid string (write an ID in quotes)'
    ]


def test_a_quoted_numeric_stream_id_is_read_as_written(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "sources:\n  - {name: sc, provider: streamscharts, client_id: cid-0123456789, token: tok-abcdefghij,\n"
        "     streams: [{platform: twitch, channel: shroud, stream_id: '41976921163'}]}\n"
    )
    assert load_config(str(path)).sources[0].streams[0].stream_id == "41976921163"


def test_both_credentials_are_secrets() -> None:
    assert sorted(settings(streams=[SHROUD]).secret_values()) == sorted([CLIENT_ID, TOKEN])


# --- request shapes -------------------------------------------------------------------------------


async def test_each_set_calls_its_documented_route_with_platform_and_both_headers(serve_app, fetcher) -> None:
    vendor = FakeVendor({s: fixture_json(f"streamscharts/{s}.json") for s in ("standard", "subs")})
    vendor.bodies["chat"] = fixture_json("streamscharts/chat_twitch.json")
    vendor.bodies["extra"] = fixture_json("streamscharts/extra.json")
    base_url = await serve_app(vendor.app())
    result = await provider(base_url=base_url, metric_sets=["extra", "subs", "chat"]).poll(fetcher, NOW)
    assert result.ok, result.failures
    assert sorted((path, query["platform"]) for path, query, _ in vendor.requests) == [
        ("/api/jazz/channels/shroud/streams-extra/41976921163", "twitch"),
        ("/api/jazz/channels/shroud/streams-extra/41976921163/chat", "twitch"),
        ("/api/jazz/channels/shroud/streams-extra/41976921163/subs", "twitch"),
    ]
    assert all(h["Client-ID"] == CLIENT_ID and h["Token"] == TOKEN for _, _, h in vendor.requests)
    assert all(set(query) == {"platform"} for _, query, _ in vendor.requests)
    assert sorted(endpoint for endpoint, _ in fetcher.observer_record.requests) == [
        "stream_chat",
        "stream_extra",
        "stream_subs",
    ]


async def test_standard_and_games_routes_and_youtube_by_channel_id(serve_app, fetcher) -> None:
    vendor = FakeVendor({"standard": fixture_json("streamscharts/standard.json"),
                         "games": fixture_json("streamscharts/games.json")})  # fmt: skip
    base_url = await serve_app(vendor.app())
    speed = {"platform": "youtube", "channel": "UCWsDFcIhY2DBi3GB5uykGXA", "stream_id": "10203361939495629149"}
    await provider(base_url=base_url, streams=[SHROUD]).poll(fetcher, NOW)
    await provider(base_url=base_url, streams=[speed], metric_sets=["games"]).poll(fetcher, NOW)
    assert [path for path, _, _ in vendor.requests] == [
        "/api/jazz/channels/shroud/streams/41976921163",
        "/api/jazz/channels/UCWsDFcIhY2DBi3GB5uykGXA/streams-extra/10203361939495629149/games",
    ]


async def test_a_followed_channel_uses_the_single_channel_route_for_today(serve_app, fetcher) -> None:
    body = {"data": {"platform": "twitch", "channel_name": "shroud", "hours_watched": 10, "airtime_in_m": 60,
                     "peak_viewers": 15, "average_viewers": 10, "followers_gain": 3}}  # fmt: skip
    vendor = FakeVendor({"channel": body})
    base_url = await serve_app(vendor.app())
    result = await provider(base_url=base_url, streams=[], channels=[{"platform": "twitch", "channel": "shroud"}]).poll(
        fetcher, NOW
    )
    [(path, query, _)] = vendor.requests
    assert (path, query) == ("/api/jazz/channels/shroud", {"platform": "twitch", "time": "today"})
    samples = result.samples["twitch/shroud/today/standard"]
    assert values(samples, window="today") == {
        "livestream_viewer_seconds_total{window=today}": 36000,
        "livestream_airtime_seconds{window=today}": 3600,
        "livestream_peak_viewers{window=today}": 15,
        "livestream_average_viewers{window=today}": 10,
        "livestream_followers_gained_total{window=today}": 3,
    }
    assert {s.part for s in samples if s.name.endswith("_total")} == {"2024-05-01"}
    assert fetcher.observer_record.requests == [("channel_today", "200")]


async def test_a_followed_channels_counters_start_a_new_part_each_utc_day(serve_app, fetcher) -> None:
    vendor = FakeVendor({"channel": {"data": {"hours_watched": 10, "followers_gain": 3}}})
    streams_charts = provider(
        base_url=await serve_app(vendor.app()), streams=[], channels=[{"platform": "kick", "channel": "xqc"}]
    )
    parts = []
    for when in (NOW, NOW + timedelta(hours=12), NOW + timedelta(hours=13)):
        result = await streams_charts.poll(fetcher, when)
        parts.append({s.part for s in result.samples["kick/xqc/today/standard"] if s.name.endswith("_total")})
    assert parts == [{"2024-05-01"}, {"2024-05-02"}, {"2024-05-02"}]


async def test_vendor_error_message_becomes_the_failure_reason(serve_app, fetcher) -> None:
    vendor = FakeVendor({"standard": {"message": "Stream not found"}}, status=404)
    result = await provider(base_url=await serve_app(vendor.app())).poll(fetcher, NOW)
    error = result.failures["twitch/shroud/41976921163/standard"]
    assert (error.status, error.reason) == (404, "Stream not found")


# --- credits and budget ---------------------------------------------------------------------------


async def test_credits_follow_the_price_table_first_call_then_next_calls(serve_app, fetcher) -> None:
    bodies = {s: live(fixture_json(f"streamscharts/{s}.json")) for s in ("extra", "games", "subs")}
    bodies["chat"] = live(fixture_json("streamscharts/chat_twitch.json"))
    bodies["channel"] = fixture_json("streamscharts/standard.json")
    vendor = FakeVendor(bodies)
    streams_charts = provider(
        base_url=await serve_app(vendor.app()),
        metric_sets=["extra", "games", "subs", "chat"],
        channels=[{"platform": "twitch", "channel": "shroud"}],
    )
    spent = [(await streams_charts.poll(fetcher, NOW + timedelta(minutes=i))).credits_spent for i in range(3)]
    assert spent == [2 + 2 + 1 + 1 + 1, 0.4 + 0.4 + 0.2 + 0.4 + 0.1, 0.4 + 0.4 + 0.2 + 0.4 + 0.1]


async def test_a_second_stream_of_the_same_channel_pays_the_next_price_from_its_first_call(serve_app, fetcher) -> None:
    vendor = FakeVendor({"standard": live(fixture_json("streamscharts/standard.json"))})
    streams_charts = provider(base_url=await serve_app(vendor.app()), streams=[SHROUD, {**SHROUD, "stream_id": "2"}])
    assert (await streams_charts.poll(fetcher, NOW)).credits_spent == 1.2


async def test_day_31_pays_the_first_price_again(serve_app, fetcher) -> None:
    vendor = FakeVendor({"standard": live(fixture_json("streamscharts/standard.json"))})
    streams_charts = provider(base_url=await serve_app(vendor.app()))
    await streams_charts.poll(fetcher, NOW)
    assert (await streams_charts.poll(fetcher, NOW + timedelta(days=29, hours=23))).credits_spent == 0.2
    assert (await streams_charts.poll(fetcher, NOW + timedelta(days=30))).credits_spent == 1


async def test_an_unanswered_call_is_not_counted(serve_app, fetcher) -> None:
    vendor = FakeVendor({"standard": {"message": "boom"}}, status=500)
    streams_charts = provider(base_url=await serve_app(vendor.app()), credits_budget=5)
    result = await streams_charts.poll(fetcher, NOW)
    assert (result.credits_spent, result.credits_remaining) == (0, 5)
    vendor.status, vendor.bodies["standard"] = 200, live(fixture_json("streamscharts/standard.json"))
    assert (await streams_charts.poll(fetcher, NOW)).credits_spent == 1


async def test_a_restart_neither_forgets_the_first_call_nor_the_spending(serve_app, fetcher) -> None:
    vendor = FakeVendor({"standard": live(fixture_json("streamscharts/standard.json"))})
    base_url = await serve_app(vendor.app())
    before = provider(base_url=base_url, credits_budget=10)
    await before.poll(fetcher, NOW)
    after = provider(base_url=base_url, credits_budget=10)
    after.restore_state(json.loads(json.dumps(before.export_state())))
    result = await after.poll(fetcher, NOW + timedelta(minutes=5))
    assert result.credits_spent == 0.2
    assert result.credits_remaining == 8.8


async def test_budget_exactly_reached_then_calls_stop_and_last_values_stay(serve_app, fetcher, caplog) -> None:
    vendor = FakeVendor({"standard": live(fixture_json("streamscharts/standard.json"))})
    streams_charts = provider(base_url=await serve_app(vendor.app()), credits_budget=1.4)
    results = [await streams_charts.poll(fetcher, NOW + timedelta(minutes=i)) for i in range(3)]
    assert [r.credits_spent for r in results] == [1, 0.2, 0.2]
    assert results[-1].credits_remaining == 0
    with caplog.at_level(logging.WARNING, logger="exporter.providers.streamscharts"):
        paused = [await streams_charts.poll(fetcher, NOW + timedelta(minutes=3 + i)) for i in range(2)]
    assert len(vendor.requests) == 3
    assert all(r.ok and r.credits_spent == 0 and r.credits_remaining == 0 for r in paused)
    assert paused[-1].samples == results[-1].samples
    [record] = caplog.records
    assert "credits budget reached" in record.getMessage()
    assert (record.credits_budget, record.credits_spent_30d, record.next_call_credits) == (1.4, 1.4, 0.2)


async def test_a_first_call_dearer_than_what_is_left_is_never_made(serve_app, fetcher) -> None:
    vendor = FakeVendor({"standard": live(fixture_json("streamscharts/standard.json"))})
    streams_charts = provider(base_url=await serve_app(vendor.app()), credits_budget=0.9)
    result = await streams_charts.poll(fetcher, NOW)
    assert vendor.requests == []
    assert result.samples == {"twitch/shroud/41976921163/standard": []}


async def test_calls_resume_when_spending_leaves_the_30_day_window(serve_app, fetcher, caplog) -> None:
    vendor = FakeVendor({"standard": live(fixture_json("streamscharts/standard.json"))})
    streams_charts = provider(base_url=await serve_app(vendor.app()), credits_budget=1)
    await streams_charts.poll(fetcher, NOW)
    await streams_charts.poll(fetcher, NOW + timedelta(days=1))
    assert len(vendor.requests) == 1
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="exporter.providers.streamscharts"):
        resumed = await streams_charts.poll(fetcher, NOW + timedelta(days=30))
    assert resumed.credits_spent == 1 and len(vendor.requests) == 2
    assert [r.getMessage() for r in caplog.records] == ["credits budget allows calls again"]


def test_default_interval_fits_a_month_of_polling_into_the_budget() -> None:
    streams_charts = provider(metric_sets=["standard", "chat"], credits_budget=1000)
    # first calls 1 + 1; every poll 0.2 + 0.4: 998 / 0.6 = 1663 polls in 30 days
    assert streams_charts.default_interval() == pytest.approx(30 * 86400 / 1663, abs=1)
    assert provider(credits_budget=100_000).default_interval() == 300
    assert provider(credits_budget=1).default_interval() == 86400
    assert provider().default_interval() == 900


# --- ended streams and testing mode -----------------------------------------------------------------


async def test_an_ended_stream_is_read_once_then_served_from_memory_and_state(serve_app, fetcher) -> None:
    vendor = FakeVendor({"standard": fixture_json("streamscharts/standard.json")})
    base_url = await serve_app(vendor.app())
    streams_charts = provider(base_url=base_url)
    first = await streams_charts.poll(fetcher, NOW)
    second = await streams_charts.poll(fetcher, NOW + timedelta(minutes=15))
    assert len(vendor.requests) == 1
    assert second.samples == first.samples and second.credits_spent == 0
    restarted = provider(base_url=base_url)
    restarted.restore_state(json.loads(json.dumps(streams_charts.export_state())))
    third = await restarted.poll(fetcher, NOW + timedelta(days=3))
    assert len(vendor.requests) == 1
    assert third.samples == first.samples


async def test_a_live_stream_is_called_every_poll(serve_app, fetcher) -> None:
    vendor = FakeVendor({"standard": live(fixture_json("streamscharts/standard.json"))})
    streams_charts = provider(base_url=await serve_app(vendor.app()))
    for i in range(3):
        await streams_charts.poll(fetcher, NOW + timedelta(minutes=15 * i))
    assert len(vendor.requests) == 3


async def test_a_stream_that_ended_minutes_ago_is_still_called(serve_app, fetcher) -> None:
    body = fixture_json("streamscharts/standard.json")
    body["data"]["stream_end"] = (NOW - timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S")
    vendor = FakeVendor({"standard": body})
    streams_charts = provider(base_url=await serve_app(vendor.app()))
    await streams_charts.poll(fetcher, NOW)
    await streams_charts.poll(fetcher, NOW + timedelta(minutes=1))
    assert len(vendor.requests) == 2


async def test_testing_mode_sends_the_flag_counts_no_credits_and_keys_on_the_config(serve_app, fetcher) -> None:
    vendor = FakeVendor({"standard": fixture_json("streamscharts/standard.json")})
    asked = {"platform": "twitch", "channel": "someone_else", "stream_id": "123"}
    streams_charts = provider(base_url=await serve_app(vendor.app()), streams=[asked], testing_mode=True,
                              credits_budget=1)  # fmt: skip
    for _ in range(3):
        result = await streams_charts.poll(fetcher, NOW)
    assert [query for _, query, _ in vendor.requests] == [{"platform": "twitch", "testing_mode": "true"}] * 3
    assert (result.credits_spent, result.credits_remaining) == (0, 1)
    labels = {
        (dict(s.labels)["channel"], dict(s.labels)["stream"])
        for s in result.samples["twitch/someone_else/123/standard"]
    }
    assert labels == {("someone_else", "123")}


# --- the simulator ----------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = NOW.timestamp()

    def __call__(self) -> float:
        return self.now


def sim_entry(sim: StreamsChartsSimulator, live_stream: bool, platform: str = "twitch") -> dict[str, str]:
    [stream] = [s for s in sim.streams.values() if s.platform == platform and (s.end is None) == live_stream][:1]
    return {"platform": stream.platform, "channel": stream.channel, "stream_id": stream.stream_id}


async def test_simulator_charges_what_the_exporter_counts(serve_app, fetcher) -> None:
    clock = Clock()
    sim = StreamsChartsSimulator(client_id=CLIENT_ID, token=TOKEN, clock=clock)
    streams_charts = provider(
        base_url=await serve_app(sim.app()),
        streams=[sim_entry(sim, True), sim_entry(sim, False), sim_entry(sim, True, "youtube")],
        channels=[{"platform": "twitch", "channel": "demo_streamer"}],
        metric_sets=["standard", "extra", "games", "subs", "chat"],
    )
    counted = 0.0
    for i in range(4):
        clock.now = NOW.timestamp() + 600 * i
        result = await streams_charts.poll(fetcher, datetime.fromtimestamp(clock.now, UTC))
        assert result.ok, result.failures
        counted += result.credits_spent
    assert counted == pytest.approx(sim.spent, abs=1e-9)
    assert sim.spent == pytest.approx(11.4 + 3 * 2.3)


async def test_simulator_budget_exactly_reached_stops_its_charges(serve_app, fetcher) -> None:
    clock = Clock()
    sim = StreamsChartsSimulator(client_id=CLIENT_ID, token=TOKEN, clock=clock)
    streams_charts = provider(base_url=await serve_app(sim.app()), streams=[sim_entry(sim, True)], credits_budget=1.4)
    for i in range(6):
        clock.now = NOW.timestamp() + 600 * i
        await streams_charts.poll(fetcher, datetime.fromtimestamp(clock.now, UTC))
    assert sim.spent == 1.4
    assert len(sim.requests) == 3


async def test_simulator_testing_mode_is_free_and_describes_another_channel(serve_app, fetcher) -> None:
    sim = StreamsChartsSimulator(client_id=CLIENT_ID, token=TOKEN)
    asked = sim_entry(sim, True)
    streams_charts = provider(base_url=await serve_app(sim.app()), streams=[asked], testing_mode=True)
    result = await streams_charts.poll(fetcher, datetime.now(UTC))
    assert result.ok and sim.spent == 0
    [info] = [s for s in result.samples[f"twitch/{asked['channel']}/{asked['stream_id']}/standard"]
              if s.name == "livestream_stream_info"]  # fmt: skip
    assert dict(info.labels)["channel"] == asked["channel"]
    assert dict(info.labels)["title"] == "testing mode stream"


async def test_simulator_rejects_wrong_credentials(serve_app, fetcher) -> None:
    sim = StreamsChartsSimulator(client_id=CLIENT_ID, token="other-token")
    result = await provider(base_url=await serve_app(sim.app()), streams=[sim_entry(sim, True)]).poll(
        fetcher, datetime.now(UTC)
    )
    [error] = result.failures.values()
    assert error.credentials_rejected and sim.spent == 0


async def test_simulator_answers_402_when_the_balance_is_too_small(serve_app, fetcher) -> None:
    sim = StreamsChartsSimulator(client_id=CLIENT_ID, token=TOKEN, balance=0.5)
    result = await provider(base_url=await serve_app(sim.app()), streams=[sim_entry(sim, True)]).poll(
        fetcher, datetime.now(UTC)
    )
    [error] = result.failures.values()
    assert (error.status, error.reason) == (402, "Not enough credits")
    assert result.credits_spent == 0


async def test_simulator_has_no_followers_for_rumble(serve_app, fetcher) -> None:
    sim = StreamsChartsSimulator(client_id=CLIENT_ID, token=TOKEN)
    base_url = await serve_app(sim.app())
    async with fetcher.get(
        "x", f"{base_url}/api/jazz/channels/demo_rumbler/streams/4400001",
        params={"platform": "rumble"}, headers={"Client-ID": CLIENT_ID, "Token": TOKEN},
    ) as answer:  # fmt: skip
        data = answer.json()["data"]
    assert "followers_gain" not in data and "top_game_by_hw" not in data
    assert data["hours_watched"] > 0


async def test_simulator_fault_injection_uses_its_error_body(serve_app, fetcher) -> None:
    sim = StreamsChartsSimulator(client_id=CLIENT_ID, token=TOKEN)
    streams_charts = provider(base_url=await serve_app(sim.app()), streams=[sim_entry(sim, True)])
    sim.faults.fault = {"status": 503, "times": 1}
    failed = await streams_charts.poll(fetcher, datetime.now(UTC))
    assert [e.reason for e in failed.failures.values()] == ["Service unavailable"]
    assert failed.credits_spent == 0
    assert (await streams_charts.poll(fetcher, datetime.now(UTC))).credits_spent == 1


def documented_metrics(vendor: str) -> set[str]:
    page = (REPO_ROOT / "docs" / "vendors" / f"{vendor}.md").read_text()
    return {line.split("`")[1] for line in page.splitlines() if line.startswith("| `livestream_")}


def test_every_metric_of_both_vendors_is_in_its_vendor_pages_metric_table() -> None:
    names = {m.family.name for m in (*STANDARD_METRICS, *EXTRA_METRICS, *GAME_METRICS, *SUBS_METRICS, *CHAT_METRICS)}
    names |= {f.name for f in StreamsCharts.families}
    assert names - documented_metrics("streamscharts") == set()
    assert {f.name for f in Cloudflare.families} - documented_metrics("cloudflare") == set()


def test_a_sharded_replica_spends_only_its_share_of_the_budget() -> None:
    sharded = provider(ShardView(budget_share=1 / 3), credits_budget=90)
    assert sharded.ledger.budget == 3000
    assert sharded.default_interval() > provider(credits_budget=90).default_interval()


async def test_the_last_values_kept_per_stream_are_not_tracked_by_the_garbage_collector(serve_app, fetcher) -> None:
    vendor = FakeVendor({"standard": live(fixture_json("streamscharts/standard.json"))})
    streams_charts = provider(base_url=await serve_app(vendor.app()))
    await streams_charts.poll(fetcher, NOW)
    for _ in range(4):  # a tuple is untracked by the first collection that finds its members so
        gc.collect()
    assert streams_charts.last
    assert not any(gc.is_tracked(kept) for kept in streams_charts.last.values())
