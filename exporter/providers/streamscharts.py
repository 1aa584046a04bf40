"""Streams Charts: per-stream statistics of five metric sets, channels' figures of today, credits.

Follows provider-docs/streamscharts-single-stream-stats.md (routes, `platform`, `Client-ID` and
`Token` headers, YouTube channels by channel ID, the five sets and their prices, the platforms'
"Excluding" lists) and streamscharts-notes.md (`testing_mode=true`, the single-channel route
`/api/jazz/channels/{name}?platform=...&time=today` and its prices).

Every (stream, metric set) and every followed channel is one unit, so sharding can split them.
Each call is booked in a `CreditLedger` before it is made: the first call for a channel and set
in 30 days costs the set's first price, each further one its next price, and a `credits_budget`
refuses a call that would take the last 30 days' spending past it. A refused unit keeps serving
its last values. A stream whose `stream_end` lies more than `SETTLE_SECONDS` in the past cannot
change any more: it is read once, then served from memory and the state file, never called again.

    livestream_viewer_seconds_total{platform="twitch",channel="shroud",stream="41976921163"} 417261600
    livestream_stream_info{platform="twitch",channel="shroud",stream="41976921163",title="making my
        sorc NOW also check out !announcement",language="en",top_game="Diablo IV",channel_id="37402112"} 1
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from pydantic import Field, PositiveFloat, ValidationInfo, field_validator

from exporter.credits import PERIOD_SECONDS, CreditLedger, Price, hundredths
from exporter.families import (
    AIRTIME_SECONDS,
    AUTHENTICATED_AVERAGE_VIEW_DURATION,
    AUTHENTICATED_VIEWERS_RATIO,
    AVERAGE_VIEWERS,
    CHAT_ACTIVE_CHATTERS,
    CHAT_ACTIVE_CHATTERS_TO_VIEWERS_RATIO,
    CHAT_CHEER_AMOUNT,
    CHAT_CHEER_AMOUNT_PER_CHATTER,
    CHAT_CHEER_AMOUNT_PER_MESSAGE,
    CHAT_CHEER_CHATTERS,
    CHAT_CHEER_INCOME,
    CHAT_CHEER_MESSAGES,
    CHAT_ENGAGEMENT_RATIO,
    CHAT_MESSAGES,
    CHAT_MESSAGES_PER_CHATTER,
    CHAT_MULTI_MESSAGE_CHATTERS,
    CHAT_PASSIVE_CHATTERS,
    CHAT_SINGLE_MESSAGE_CHATTERS,
    CHAT_WORDS,
    ESTIMATED_AUDIENCE,
    ESTIMATED_AUDIENCE_AVERAGE_VIEW_DURATION,
    FOLLOWERS_GAINED,
    GAME_AIRTIME_SECONDS,
    GAME_AVERAGE_VIEWERS,
    GAME_FOLLOWERS_GAINED,
    GAME_PEAK_VIEWERS,
    GAME_VIEWER_SECONDS,
    GIFTED_SUBSCRIPTIONS,
    LIVE_VIEWS,
    NEW_SUBSCRIPTIONS,
    PAID_SUBSCRIPTIONS,
    PEAK_AUTHENTICATED_VIEWERS,
    PEAK_VIEWERS,
    RESUBSCRIPTIONS,
    RETURNED_VIEWERS_RATIO,
    STREAM_INFO,
    STREAM_UNIQUE_VIEWERS,
    SUBSCRIPTION_INCOME_MAX,
    SUBSCRIPTION_INCOME_MIN,
    SUBSCRIPTIONS,
    TIER_SUBSCRIPTIONS,
    TOP_GAME_WATCHED_RATIO,
    UNIQUE_AUTHENTICATED_VIEWERS,
    VIEWER_SECONDS,
    VIEWERS_FROM_LAST_STREAM_RATIO,
    MetricFamily,
)
from exporter.poll import WHOLE_SOURCE, Fetcher, InvalidBody, Labels, PollError, PollResult, Sample, ShardView
from exporter.providers import register
from exporter.providers.base import UNITS_IN_FLIGHT, Provider, raise_unless_ok
from exporter.settings import PathSegment, Secret, SourceSettings, StrictModel, one_of

log = logging.getLogger(__name__)

PLATFORMS = (
    "twitch",
    "youtube",
    "kick",
    "rumble",
    "trovo",
    "nimo",
    "bigo",
    "nonolive",
    "afreecatv",
    "mildom",
    "chzzk",
    "soop",
    "steam",
)
METRIC_SETS = ("standard", "extra", "games", "subs", "chat")
SET_PLATFORMS = {
    "standard": PLATFORMS,
    "extra": ("twitch",),
    "games": tuple(p for p in PLATFORMS if p != "rumble"),
    "subs": ("twitch",),
    "chat": ("twitch", "youtube", "kick"),
}
SET_ROUTES = {
    "standard": "streams/{id}",
    "extra": "streams-extra/{id}",
    "games": "streams-extra/{id}/games",
    "subs": "streams-extra/{id}/subs",
    "chat": "streams-extra/{id}/chat",
}
STREAM_PRICES = {
    "standard": Price(100, 20),
    "extra": Price(200, 40),
    "games": Price(200, 40),
    "subs": Price(100, 20),
    "chat": Price(100, 40),
}
CHANNEL_PRICE = Price(100, 10)
"""The single-channel route, standard set, for windows of 14 days or less (`today`)."""
SUPERSEDE_STANDARD = ("games", "extra")
"""Sets whose answer already holds every standard field: with one of them, standard is not called."""
EXCLUDED = {
    **dict.fromkeys(("nimo", "bigo", "nonolive", "afreecatv", "chzzk", "soop", "steam"), frozenset({"followers_gain"})),
    "rumble": frozenset({"followers_gain", "top_game_by_hw", "top_game_by_hw_%"}),
}
SETTLE_SECONDS = 1800.0
MIN_INTERVAL = 300.0
NO_BUDGET_INTERVAL = 900.0
MAX_INTERVAL = 86400.0
YOUTUBE_CHANNEL_ID = re.compile(r"UC[A-Za-z0-9_-]{22}")


@dataclass(frozen=True, slots=True)
class Metric:
    """One numeric vendor field: its JSON key, our family, the factor to base units (minutes and
    hours to seconds; a percentage to a 0-1 ratio, divided in decimal so 81.7 % reads 0.817),
    extra labels."""

    key: str
    family: MetricFamily
    scale: int = 1
    labels: Labels = ()
    percent: bool = False

    def convert(self, value: float) -> float:
        if self.percent:
            return float(Decimal(repr(value)) / 100)
        return value * self.scale


STANDARD_METRICS = (
    Metric("hours_watched", VIEWER_SECONDS, 3600),
    Metric("airtime_in_m", AIRTIME_SECONDS, 60),
    Metric("peak_viewers", PEAK_VIEWERS),
    Metric("average_viewers", AVERAGE_VIEWERS),
    Metric("followers_gain", FOLLOWERS_GAINED),
)
EXTRA_METRICS = (
    Metric("live_views", LIVE_VIEWS),
    Metric("unique_viewers", STREAM_UNIQUE_VIEWERS),
    Metric("unique_auth_viewers", UNIQUE_AUTHENTICATED_VIEWERS),
    Metric("peak_auth_viewers", PEAK_AUTHENTICATED_VIEWERS),
    Metric("auth_viewers_average_view_duration_in_m", AUTHENTICATED_AVERAGE_VIEW_DURATION, 60),
    Metric("authorized_to_all_viewers_ratio_%", AUTHENTICATED_VIEWERS_RATIO, percent=True),
    Metric("viewers_from_last_stream_%", VIEWERS_FROM_LAST_STREAM_RATIO, percent=True),
    Metric("returned_viewers_%", RETURNED_VIEWERS_RATIO, percent=True),
    Metric("estimated_audience", ESTIMATED_AUDIENCE),
    Metric(
        "estimated_audience_average_view_duration_in_m",
        ESTIMATED_AUDIENCE_AVERAGE_VIEW_DURATION,
        60,
    ),
)
GAME_METRICS = (
    Metric("hours_watched", GAME_VIEWER_SECONDS, 3600),
    Metric("peak_viewers", GAME_PEAK_VIEWERS),
    Metric("average_viewers", GAME_AVERAGE_VIEWERS),
    Metric("airtime_in_m", GAME_AIRTIME_SECONDS, 60),
    Metric("followers_gain", GAME_FOLLOWERS_GAINED),
)
SUBS_METRICS = (
    Metric("total_subs", SUBSCRIPTIONS),
    Metric("new_subs", NEW_SUBSCRIPTIONS),
    Metric("re_subs", RESUBSCRIPTIONS),
    Metric("paid_subs", PAID_SUBSCRIPTIONS),
    Metric("gifted_subs", GIFTED_SUBSCRIPTIONS),
    Metric("prime_subs", TIER_SUBSCRIPTIONS, labels=(("tier", "prime"),)),
    Metric("tier_1_subs", TIER_SUBSCRIPTIONS, labels=(("tier", "1"),)),
    Metric("tier_2_subs", TIER_SUBSCRIPTIONS, labels=(("tier", "2"),)),
    Metric("tier_3_subs", TIER_SUBSCRIPTIONS, labels=(("tier", "3"),)),
    Metric("min_income_from_subs_in_$", SUBSCRIPTION_INCOME_MIN),
    Metric("max_income_from_subs_in_$", SUBSCRIPTION_INCOME_MAX),
)
CHAT_METRICS = (
    Metric("total_messages", CHAT_MESSAGES),
    Metric("total_words_count", CHAT_WORDS),
    Metric("active_chatters", CHAT_ACTIVE_CHATTERS),
    Metric("passive_chatters", CHAT_PASSIVE_CHATTERS),
    Metric("messages_per_chatter", CHAT_MESSAGES_PER_CHATTER),
    Metric("chat_engagement_rate_%", CHAT_ENGAGEMENT_RATIO, percent=True),
    Metric("chatters_with_1_message", CHAT_SINGLE_MESSAGE_CHATTERS),
    Metric("chatters_with_2+_message", CHAT_MULTI_MESSAGE_CHATTERS),
    Metric("cheer_messages", CHAT_CHEER_MESSAGES),
    Metric("cheer_chatters", CHAT_CHEER_CHATTERS),
    Metric("total_bits", CHAT_CHEER_AMOUNT),
    Metric("income_from_bits_in_$", CHAT_CHEER_INCOME),
    Metric("bits_per_cheered_message", CHAT_CHEER_AMOUNT_PER_MESSAGE),
    Metric("bits_per_cheered_chatter", CHAT_CHEER_AMOUNT_PER_CHATTER),
    Metric("active_chatters_to_viewers_ratio_%", CHAT_ACTIVE_CHATTERS_TO_VIEWERS_RATIO, percent=True),
)
Platform = one_of(*PLATFORMS)


class ChannelEntry(StrictModel):
    platform: Platform  # type: ignore[valid-type]
    channel: PathSegment

    @field_validator("channel")
    @classmethod
    def youtube_by_channel_id(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("platform") == "youtube" and not YOUTUBE_CHANNEL_ID.fullmatch(value):
            raise ValueError("YouTube channels are addressed by channel ID (UC followed by 22 characters)")
        return value


class StreamEntry(ChannelEntry):
    stream_id: PathSegment


class StreamsChartsSettings(SourceSettings):
    min_interval = 60.0
    """Every call costs credits, and figures have minute precision."""

    client_id: Secret
    token: Secret
    streams: list[StreamEntry] = Field(default_factory=list)
    channels: list[ChannelEntry] = Field(default_factory=list)
    metric_sets: list[one_of(*METRIC_SETS)] = Field(default_factory=lambda: ["standard"])  # type: ignore[valid-type]
    credits_budget: PositiveFloat | None = None
    testing_mode: bool = False

    @field_validator("metric_sets")
    @classmethod
    def distinct_sets(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("must name at least one set")
        if len(set(value)) != len(value):
            raise ValueError("names a set twice")
        return value


@dataclass(frozen=True, slots=True)
class Unit:
    """One call: a stream's metric set, or a followed channel's figures of today (`stream` None).

    The `carrier` unit of a stream is the one whose answer yields the standard fields and
    `livestream_stream_info`, so those series come from exactly one call.
    """

    platform: str
    channel: str
    stream: str | None
    metric_set: str
    carrier: bool
    key: str = field(init=False, compare=False)
    ledger_key: str = field(init=False, compare=False)
    """The vendor prices the first call per channel and set, separately per route."""

    def __post_init__(self) -> None:
        """Both keys are read for every unit at every poll (10k units: milliseconds of the
        event loop each time if formatted on demand)."""
        route = "stream" if self.stream is not None else "channel"
        object.__setattr__(self, "key", f"{self.platform}/{self.channel}/{self.stream or 'today'}/{self.metric_set}")
        object.__setattr__(self, "ledger_key", f"{route}:{self.platform}:{self.channel}:{self.metric_set}")

    @property
    def price(self) -> Price:
        return STREAM_PRICES[self.metric_set] if self.stream is not None else CHANNEL_PRICE

    @property
    def labels(self) -> Labels:
        if self.stream is None:
            return (("platform", self.platform), ("channel", self.channel), ("window", "today"))
        return (("platform", self.platform), ("channel", self.channel), ("stream", self.stream))

    @property
    def endpoint(self) -> str:
        """The `endpoint` label of `requests_total`: `stream_<set>` or `channel_today`."""
        return f"stream_{self.metric_set}" if self.stream is not None else "channel_today"

    def path(self) -> str:
        channel = f"/api/jazz/channels/{quote(self.channel, safe='')}"
        if self.stream is None:
            return channel
        return f"{channel}/{SET_ROUTES[self.metric_set].format(id=quote(self.stream, safe=''))}"


def stream_units(stream: StreamEntry, metric_sets: Iterable[str]) -> list[Unit]:
    """The calls one stream needs: each configured set its platform has, minus standard when a
    set that already contains it (games, extra) is called anyway."""
    sets = [s for s in metric_sets if stream.platform in SET_PLATFORMS[s]]
    if any(s in sets for s in SUPERSEDE_STANDARD):
        sets = [s for s in sets if s != "standard"]
    ordered = sorted(sets, key=("standard", "games", "extra", "subs", "chat").index)
    return [Unit(stream.platform, stream.channel, stream.stream_id, s, carrier=(s == ordered[0])) for s in ordered]


MAX_LABEL_CHARS = 256
"""The longest title, language, game or channel id kept as a label value. A stream's title and
game are written by the streamer, a third party; Twitch caps a title at 140 characters, other
platforms may not, and a label value is sent on every scrape."""


def label_text(text: str) -> str:
    """`text` cut to MAX_LABEL_CHARS (its last character an ellipsis when cut)."""
    return text if len(text) <= MAX_LABEL_CHARS else text[: MAX_LABEL_CHARS - 1] + "…"


def number(value: Any) -> float | None:
    """A vendor number (the games set sends some as strings); None when absent.

    Raises ValueError for a value that is present but not a number.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("boolean")
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        result = float(value.strip())
    else:
        raise ValueError(type(value).__name__)
    if not math.isfinite(result):
        raise ValueError("not finite")
    return result


def parse_time(value: Any) -> float | None:
    """`2023-03-19 03:35:00` (UTC, as the vendor's examples read) to Unix seconds."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def vendor_words(body: Any) -> str | None:
    """The vendor's message when its (undocumented) error body has one."""
    if isinstance(body, dict):
        for key in ("message", "error", "errors"):
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("message")
            if isinstance(value, str) and value:
                return value
            if isinstance(value, list) and value:
                return "; ".join(str(item) for item in value)
    return None


def _samples_to_json(samples: list[Sample], unit_labels: Labels) -> tuple[tuple[Any, ...], ...]:
    """A unit's samples for the state file, without the unit's own labels that start each of them
    (platform, channel, stream: two thirds of the file for 10k streams). Tuples of strings and
    numbers only, which the garbage collector stops tracking, so 10k units kept in this form do
    not lengthen full collections."""
    prefix = len(unit_labels)
    return tuple(
        (s.name, s.labels[prefix:] if s.labels[:prefix] == unit_labels else s.labels, s.value, s.part) for s in samples
    )


def _samples_from_json(data: Any, unit_labels: Labels) -> list[Sample]:
    """The samples `_samples_to_json` saved (or, from older files, with the unit's labels in full)."""
    samples = []
    for name, labels, value, part in data:
        own = tuple((str(k), str(v)) for k, v in labels)
        full = own if own[: len(unit_labels)] == unit_labels else (*unit_labels, *own)
        samples.append(Sample(str(name), full, float(value), str(part)))
    return samples


class Parser:
    """Turns one answer's `data` object into samples for one unit, counting unusable fields."""

    def __init__(self, unit: Unit, part: str) -> None:
        self.unit = unit
        self.part = part
        self.excluded = EXCLUDED.get(unit.platform, frozenset())
        self.rejected = 0
        self.samples: list[Sample] = []
        self.games_seen: set[str] = set()

    def add(self, source: dict[str, Any], metrics: Iterable[Metric], labels: Labels = ()) -> None:
        for metric in metrics:
            if metric.key in self.excluded:
                continue
            try:
                value = number(source.get(metric.key))
            except ValueError:
                self.rejected += 1
                continue
            if value is None:
                continue
            counter = metric.family.kind == "counter"
            value = metric.convert(max(0.0, value) if counter else value)
            if not math.isfinite(value):
                self.rejected += 1
                continue
            sample_labels = (*self.unit.labels, *labels, *metric.labels)
            self.samples.append(Sample(metric.family.name, sample_labels, value, self.part if counter else ""))

    def text(self, data: dict[str, Any], key: str) -> str:
        value = data.get(key)
        return "" if key in self.excluded or value is None else label_text(str(value))

    def standard(self, data: dict[str, Any]) -> None:
        self.add(data, STANDARD_METRICS)
        game = self.text(data, "top_game_by_hw")
        if game:
            self.add(data, (Metric("top_game_by_hw_%", TOP_GAME_WATCHED_RATIO, percent=True),), (("game", game),))
        if self.unit.stream is not None:
            info = (
                ("title", self.text(data, "stream_status")),
                ("language", self.text(data, "stream_language")),
                ("top_game", game),
                ("channel_id", self.text(data, "channel_id")),
            )
            self.samples.append(Sample(STREAM_INFO.name, (*self.unit.labels, *info), 1.0))

    def games(self, data: dict[str, Any]) -> None:
        games = data.get("all_stream_games")
        if games is None:
            return
        if not isinstance(games, list):
            raise InvalidBody("all_stream_games is not a list")
        for game in games:
            self.game(game)

    def game(self, game: Any) -> None:
        name = game.get("name") if isinstance(game, dict) else None
        if isinstance(name, str):
            name = label_text(name)
        if not isinstance(name, str) or not name or name in self.games_seen:
            self.rejected += 1
            return
        self.games_seen.add(name)
        self.add(game, GAME_METRICS, (("game", name),))

    def handed_over(self, game: Any) -> None:
        """An `all_stream_games` entry read while the answer is decoded (`Answer.json_with_list`):
        kept by a unit of the games set, after the standard fields `parse` adds first."""
        if self.unit.metric_set == "games":
            self.game(game)

    def parse(self, data: dict[str, Any]) -> list[Sample]:
        games_read, self.samples = self.samples, []
        if self.unit.carrier or self.unit.stream is None:
            self.standard(data)
        if self.unit.metric_set == "extra" and isinstance(data.get("extra_metrics"), dict):
            self.add(data["extra_metrics"], EXTRA_METRICS)
        elif self.unit.metric_set == "games":
            self.samples.extend(games_read)
            self.games(data)
        elif self.unit.metric_set == "subs":
            self.add(data, SUBS_METRICS)
        elif self.unit.metric_set == "chat":
            self.add(data, CHAT_METRICS)
        return self.samples


@dataclass
class _Tally:
    """What the concurrent unit calls of one poll add up to."""

    result: PollResult
    spent: int = 0
    refused: list[Unit] = field(default_factory=list)


@register
class StreamsCharts(Provider):
    name = "streamscharts"
    settings_model = StreamsChartsSettings
    default_base_url = "https://streamscharts.com"
    spends_credits = True
    families = tuple(
        dict.fromkeys(
            (
                *(m.family for m in (*STANDARD_METRICS, *EXTRA_METRICS, *GAME_METRICS, *SUBS_METRICS, *CHAT_METRICS)),
                TOP_GAME_WATCHED_RATIO,
                STREAM_INFO,
            )
        )
    )
    settings: StreamsChartsSettings

    def __init__(self, settings: StreamsChartsSettings, shard: ShardView = WHOLE_SOURCE) -> None:
        super().__init__(settings, shard)
        self.all_units = [u for stream in settings.streams for u in stream_units(stream, settings.metric_sets)]
        self.all_units += [Unit(c.platform, c.channel, None, "standard", carrier=True) for c in settings.channels]
        self.ledger = CreditLedger(self.budget())
        self.last: dict[str, tuple[tuple[Any, ...], ...]] = {}
        """Each unit's last samples as the state file holds them (`_samples_to_json`), made when the
        unit answers: saving costs no walk, and 10k streams' values are tuples the garbage
        collector does not track, where Sample objects would lengthen every full collection."""
        self.finished: set[str] = set()
        self.paused = False
        self._active_objects: list[Unit] | None = None
        self._groups: list[list[Unit]] | None = None

    def budget(self) -> float | None:
        """This replica's part of `credits_budget` (all of it unless sharded)."""
        budget = self.settings.credits_budget
        return None if budget is None else budget * self.shard.budget_share

    @classmethod
    def check_sources(cls, sources: list[Any]) -> list[tuple[Any, str, str]]:
        problems = []
        for source in sources:
            if not source.streams and not source.channels:
                problems.append((source, "streams", "at least one entry in streams or channels is required"))
                continue
            for metric_set in source.metric_sets:
                platforms = SET_PLATFORMS[metric_set]
                if not any(s.platform in platforms for s in source.streams) and not (
                    metric_set == "standard" and source.channels
                ):
                    where = "Twitch only" if platforms == ("twitch",) else "for " + ", ".join(platforms)
                    problems.append(
                        (source, "metric_sets", f"{metric_set} applies to none of the streams (it is {where})")
                    )
            seen: dict[tuple[str, str, str], int] = {}
            for index, stream in enumerate(source.streams):
                key = (stream.platform, stream.channel, stream.stream_id)
                if key in seen:
                    problems.append((source, f"streams[{index}]", f"duplicate of streams[{seen[key]}]"))
                seen.setdefault(key, index)
        return problems

    def units(self) -> list[str]:
        return [unit.key for unit in self.all_units]

    def active_unit_objects(self) -> list[Unit]:
        """Worked out once, as `active_units` is."""
        if self._active_objects is None:
            self._active_objects = [unit for unit in self.all_units if self.shard.owns_unit(unit.key)]
        return self._active_objects

    def ledger_groups(self) -> list[list[Unit]]:
        """The active units by ledger key, in order (worked out once)."""
        if self._groups is None:
            groups: dict[str, list[Unit]] = {}
            for unit in self.active_unit_objects():
                groups.setdefault(unit.ledger_key, []).append(unit)
            self._groups = list(groups.values())
        return self._groups

    def default_interval(self) -> float:
        """With a budget: the shortest interval (at least 5 minutes) at which 30 days of polling every
        unit, plus each channel and set's first-call price, fit the budget. Without one: 15 minutes."""
        budget = self.budget()
        if budget is None or self.settings.testing_mode:
            return NO_BUDGET_INTERVAL
        units = self.active_unit_objects()
        first = sum({unit.ledger_key: unit.price.first for unit in units}.values())
        per_poll = sum(unit.price.next for unit in units)
        polls = (hundredths(budget) - first) // per_poll if per_poll else 0
        if polls <= 0:
            return MAX_INTERVAL
        return min(MAX_INTERVAL, max(MIN_INTERVAL, float(math.ceil(PERIOD_SECONDS / polls))))

    async def poll(self, fetch: Fetcher, now: datetime) -> PollResult:
        """Units sharing a ledger key (a channel and set) are called one after another, so the first of
        them is the one charged the first-call price; different keys are called concurrently, at most
        UNITS_IN_FLIGHT at a time like every vendor's units (10k calls started at once stall the loop)."""
        tally = _Tally(PollResult())
        groups = self.ledger_groups()
        headers = {
            "Client-ID": self.settings.client_id.get_secret_value(),
            "Token": self.settings.token.get_secret_value(),
        }

        queue = iter(groups)

        async def worker() -> None:
            for units in queue:
                for unit in units:
                    await self.poll_unit(unit, fetch, headers, now, tally)

        await asyncio.gather(*(worker() for _ in range(min(UNITS_IN_FLIGHT, len(groups)))))
        result = tally.result
        result.credits_spent = tally.spent / 100
        result.credits_remaining = self.ledger.remaining(now.timestamp())
        self.note_pause(tally.refused, now.timestamp())
        return result

    async def poll_unit(
        self, unit: Unit, fetch: Fetcher, headers: dict[str, str], now: datetime, tally: _Tally
    ) -> None:
        """Serve an ended stream from memory, or book the call and make it; a refused call serves
        the unit's last values. Outside testing mode the answer is remembered."""
        result = tally.result
        testing = self.settings.testing_mode
        if not testing and unit.key in self.finished:
            result.samples[unit.key] = self.last_samples(unit)
            return
        charge = None
        if not testing:
            charge = self.ledger.reserve(unit.ledger_key, unit.price, now.timestamp())
            if charge is None:
                tally.refused.append(unit)
                result.samples[unit.key] = self.last_samples(unit)
                return
        answered = False
        try:
            async with fetch.get(
                unit.endpoint, self.base_url + unit.path(), params=self.params(unit), headers=headers
            ) as answer:
                raise_unless_ok(answer, vendor_words)
                answered = True
                parser = self.parser(unit, now)
                body = await answer.json_with_list(("data", "all_stream_games"), parser.handed_over)
                samples, ended = self.parse(unit, body, now, result, parser)
        except PollError as error:
            result.fail(unit.key, error)
            return
        finally:
            if charge is not None and answered:
                tally.spent += charge.cost
            elif charge is not None:
                self.ledger.refund(charge)
        result.samples[unit.key] = samples
        if not testing:
            self.last[unit.key] = _samples_to_json(samples, unit.labels)
            if ended:
                self.finished.add(unit.key)

    def last_samples(self, unit: Unit) -> list[Sample]:
        return _samples_from_json(self.last.get(unit.key, ()), unit.labels)

    def params(self, unit: Unit) -> dict[str, str]:
        params = {"platform": unit.platform}
        if unit.stream is None:
            params["time"] = "today"
        if self.settings.testing_mode:
            params["testing_mode"] = "true"
        return params

    def parser(self, unit: Unit, now: datetime) -> Parser:
        return Parser(unit, "" if unit.stream is not None else now.astimezone(UTC).date().isoformat())

    def parse(
        self, unit: Unit, body: Any, now: datetime, result: PollResult, handed_over: Parser | None = None
    ) -> tuple[list[Sample], bool]:
        """Samples of one answer, and whether the stream has ended for good; `handed_over` holds
        the games already read while decoding.

        Series are keyed on the configured platform, channel and stream, never on the identity
        the answer names (in testing mode the vendor may describe another channel).
        """
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise InvalidBody('expected {"data": {...}}')
        data = body["data"]
        parser = handed_over or self.parser(unit, now)
        samples = parser.parse(data)
        result.rejected_points += parser.rejected
        end = parse_time(data.get("stream_end")) if unit.stream is not None else None
        now_ts = now.timestamp()
        result.note_timestamp(min(end, now_ts) if end is not None else now_ts)
        return samples, end is not None and end + SETTLE_SECONDS <= now_ts

    def note_pause(self, refused: list[Unit], now: float) -> None:
        """Log once when the budget starts refusing calls, and once when it allows them again."""
        if refused and not self.paused:
            self.paused = True
            cost = self.ledger.price(refused[0].ledger_key, refused[0].price, now)
            resumes = self.ledger.affordable_at(cost, now)
            log.warning(
                "credits budget reached: calls paused, last values kept",
                extra={
                    "source": self.settings.name,
                    "credits_budget": self.settings.credits_budget,
                    "credits_spent_30d": self.ledger.spent(now) / 100,
                    "next_call": refused[0].key,
                    "next_call_credits": cost / 100,
                    "resumes_at": "never: one call costs more than the budget"
                    if resumes is None
                    else datetime.fromtimestamp(resumes, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                },
            )
        elif not refused and self.paused:
            self.paused = False
            log.info("credits budget allows calls again", extra={"source": self.settings.name})

    def export_state(self) -> dict[str, Any] | None:
        """The ledger always; last values and ended streams only outside testing mode (fake data).
        A snapshot that later polls do not change, taken without walking the samples."""
        return {
            "ledger": self.ledger.export(),
            "last": dict(self.last),
            "finished": list(self.finished),
        }

    def restore_state(self, state: dict[str, Any] | None) -> None:
        if not isinstance(state, dict):
            return
        self.ledger.restore(state.get("ledger"))
        units = {unit.key: unit for unit in self.all_units}
        saved = state.get("last")
        try:
            last = {
                key: _samples_from_json(value, units[key].labels)
                for key, value in (saved.items() if isinstance(saved, dict) else ())
                if key in units
            }
        except (TypeError, ValueError):
            last = {}
        self.last = {key: _samples_to_json(samples, units[key].labels) for key, samples in last.items()}
        finished = state.get("finished")
        self.finished = (
            {key for key in finished if isinstance(key, str) and key in last} if isinstance(finished, list) else set()
        )
