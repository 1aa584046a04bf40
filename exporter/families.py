"""Every audience metric family, declared once: name, type, HELP text and the labels it may carry.

Providers publish samples of these families (`UNIQUE_VIEWERS.sample(20, client="1", ...)`) and
never type a metric name; the metrics layer renders HELP/TYPE from this table, and a sample of a
family missing here is counted as a rejected point, never published. A vendor that brings a new
figure adds one row here; a vendor that brings new labels to an existing figure adds them to its
row. Names follow the contract: base units, `_total` for counters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from exporter.poll import Sample

MetricKind = Literal["gauge", "counter"]


@dataclass(frozen=True, slots=True)
class MetricFamily:
    """A metric's exposition name, type, HELP text, and the labels a sample may set (beyond
    `source`, `provider` and a source's constant labels); counter names end in `_total`."""

    name: str
    kind: MetricKind
    help: str
    labels: tuple[str, ...] = ()

    def sample(self, value: float, part: str = "", **labels: str) -> Sample:
        """One value of this family; `part` names what a counter's running total belongs to."""
        return Sample.of(self.name, value, part, **labels)


_LLS = ("domain", "app", "stream", "region", "protocol")
_NAVER = ("device", "video_type")
_STREAM = ("platform", "channel", "stream", "window")
"""A Streams Charts stream (`stream`) or a followed channel's figures of today (`window`)."""
_GAME = (*_STREAM, "game")

CONCURRENT_VIEWERS = MetricFamily(
    "livestream_concurrent_viewers",
    "gauge",
    "Concurrent viewers at the newest vendor point (LLS: the peak within that interval; "
    "NAVER: player-measured current viewers).",
    (*_LLS, *_NAVER),
)
UNIQUE_VIEWERS = MetricFamily(
    "livestream_unique_viewers",
    "gauge",
    "Unique viewers in the newest closed bucket of the given granularity (Gcore, via CDN).",
    ("client", "stream", "granularity"),
)
VIEWER_SECONDS = MetricFamily(
    "livestream_viewer_seconds_total", "counter", "Seconds watched by viewers, summed over vendor totals.", _STREAM
)
INGEST_SECONDS = MetricFamily("livestream_ingest_seconds_total", "counter", "Seconds of ingest (input streamed).")
SESSIONS = MetricFamily("livestream_sessions_total", "counter", "Livestream sessions.")
PEAK_VIEWERS = MetricFamily("livestream_peak_viewers", "gauge", "Peak concurrent viewers of a stream.", _STREAM)
AVERAGE_VIEWERS = MetricFamily(
    "livestream_average_viewers", "gauge", "Average concurrent viewers of a stream.", _STREAM
)
AIRTIME_SECONDS = MetricFamily("livestream_airtime_seconds", "gauge", "Seconds a stream has been on air.", _STREAM)
FOLLOWERS_GAINED = MetricFamily(
    "livestream_followers_gained_total", "counter", "Followers gained during a stream.", _STREAM
)
STREAM_INFO = MetricFamily(
    "livestream_stream_info",
    "gauge",
    "Descriptive text of a stream; the value is always 1.",
    ("platform", "channel", "stream", "title", "language", "top_game", "channel_id"),
)
TOP_GAME_WATCHED_RATIO = MetricFamily(
    "livestream_top_game_watched_ratio",
    "gauge",
    "Share (0-1) of a stream's watch time spent on its top game (label game).",
    _GAME,
)

LIVE_VIEWS = MetricFamily(
    "livestream_live_views_total", "counter", "Live views of a stream (Streams Charts extra set).", _STREAM
)
STREAM_UNIQUE_VIEWERS = MetricFamily(
    "livestream_stream_unique_viewers",
    "gauge",
    "Unique viewers over a whole stream (Streams Charts extra set).",
    _STREAM,
)
UNIQUE_AUTHENTICATED_VIEWERS = MetricFamily(
    "livestream_unique_authenticated_viewers", "gauge", "Unique logged-in viewers of a stream.", _STREAM
)
PEAK_AUTHENTICATED_VIEWERS = MetricFamily(
    "livestream_peak_authenticated_viewers", "gauge", "Peak concurrent logged-in viewers of a stream.", _STREAM
)
AUTHENTICATED_AVERAGE_VIEW_DURATION = MetricFamily(
    "livestream_authenticated_average_view_duration_seconds",
    "gauge",
    "Average view duration of logged-in viewers.",
    _STREAM,
)
AUTHENTICATED_VIEWERS_RATIO = MetricFamily(
    "livestream_authenticated_viewers_ratio", "gauge", "Share (0-1) of logged-in viewers among all viewers.", _STREAM
)
VIEWERS_FROM_LAST_STREAM_RATIO = MetricFamily(
    "livestream_viewers_from_last_stream_ratio",
    "gauge",
    "Share (0-1) of viewers who also watched the previous stream.",
    _STREAM,
)
RETURNED_VIEWERS_RATIO = MetricFamily(
    "livestream_returned_viewers_ratio", "gauge", "Share (0-1) of returning viewers.", _STREAM
)
ESTIMATED_AUDIENCE = MetricFamily(
    "livestream_estimated_audience", "gauge", "Estimated audience of a stream (unique people).", _STREAM
)
ESTIMATED_AUDIENCE_AVERAGE_VIEW_DURATION = MetricFamily(
    "livestream_estimated_audience_average_view_duration_seconds",
    "gauge",
    "Average view duration of the estimated audience.",
    _STREAM,
)

GAME_VIEWER_SECONDS = MetricFamily(
    "livestream_game_viewer_seconds_total",
    "counter",
    "Seconds watched by viewers while a stream showed a game (label game).",
    _GAME,
)
GAME_PEAK_VIEWERS = MetricFamily(
    "livestream_game_peak_viewers", "gauge", "Peak concurrent viewers while a stream showed a game.", _GAME
)
GAME_AVERAGE_VIEWERS = MetricFamily(
    "livestream_game_average_viewers", "gauge", "Average concurrent viewers while a stream showed a game.", _GAME
)
GAME_AIRTIME_SECONDS = MetricFamily(
    "livestream_game_airtime_seconds", "gauge", "Seconds a stream spent on a game.", _GAME
)
GAME_FOLLOWERS_GAINED = MetricFamily(
    "livestream_game_followers_gained_total", "counter", "Followers gained while a stream showed a game.", _GAME
)

SUBSCRIPTIONS = MetricFamily(
    "livestream_subscriptions_total", "counter", "Subscriptions during a stream (paid and gifted).", _STREAM
)
NEW_SUBSCRIPTIONS = MetricFamily(
    "livestream_new_subscriptions_total", "counter", "First-time paid subscriptions during a stream.", _STREAM
)
RESUBSCRIPTIONS = MetricFamily(
    "livestream_resubscriptions_total", "counter", "Renewed paid subscriptions announced during a stream.", _STREAM
)
PAID_SUBSCRIPTIONS = MetricFamily(
    "livestream_paid_subscriptions_total", "counter", "Paid subscriptions (new and renewed) during a stream.", _STREAM
)
GIFTED_SUBSCRIPTIONS = MetricFamily(
    "livestream_gifted_subscriptions_total", "counter", "Gifted subscriptions during a stream.", _STREAM
)
TIER_SUBSCRIPTIONS = MetricFamily(
    "livestream_tier_subscriptions_total",
    "counter",
    "Subscriptions during a stream by tier (prime, 1, 2, 3).",
    (*_STREAM, "tier"),
)
SUBSCRIPTION_INCOME_MIN = MetricFamily(
    "livestream_subscription_income_min_usd",
    "gauge",
    "Lower estimate of a stream's subscription income, US dollars.",
    _STREAM,
)
SUBSCRIPTION_INCOME_MAX = MetricFamily(
    "livestream_subscription_income_max_usd",
    "gauge",
    "Upper estimate of a stream's subscription income, US dollars.",
    _STREAM,
)

CHAT_MESSAGES = MetricFamily("livestream_chat_messages_total", "counter", "Chat messages during a stream.", _STREAM)
CHAT_WORDS = MetricFamily("livestream_chat_words_total", "counter", "Words in chat messages during a stream.", _STREAM)
CHAT_ACTIVE_CHATTERS = MetricFamily(
    "livestream_chat_active_chatters", "gauge", "Viewers who wrote in chat during a stream.", _STREAM
)
CHAT_PASSIVE_CHATTERS = MetricFamily(
    "livestream_chat_passive_chatters", "gauge", "Chat members who did not write during a stream.", _STREAM
)
CHAT_MESSAGES_PER_CHATTER = MetricFamily(
    "livestream_chat_messages_per_chatter", "gauge", "Chat messages per active chatter.", _STREAM
)
CHAT_ENGAGEMENT_RATIO = MetricFamily(
    "livestream_chat_engagement_ratio", "gauge", "Chat engagement rate (0-1).", _STREAM
)
CHAT_SINGLE_MESSAGE_CHATTERS = MetricFamily(
    "livestream_chat_single_message_chatters", "gauge", "Active chatters who wrote exactly one message.", _STREAM
)
CHAT_MULTI_MESSAGE_CHATTERS = MetricFamily(
    "livestream_chat_multi_message_chatters", "gauge", "Active chatters who wrote two or more messages.", _STREAM
)
CHAT_CHEER_MESSAGES = MetricFamily(
    "livestream_chat_cheer_messages_total", "counter", "Chat messages with a cheer (bits).", _STREAM
)
CHAT_CHEER_CHATTERS = MetricFamily("livestream_chat_cheer_chatters", "gauge", "Chatters who cheered.", _STREAM)
CHAT_CHEER_AMOUNT = MetricFamily(
    "livestream_chat_cheer_amount_total", "counter", "Twitch Bits cheered during a stream.", _STREAM
)
CHAT_CHEER_INCOME = MetricFamily(
    "livestream_chat_cheer_income_usd", "gauge", "Estimated income from cheered Bits, US dollars.", _STREAM
)
CHAT_CHEER_AMOUNT_PER_MESSAGE = MetricFamily(
    "livestream_chat_cheer_amount_per_message", "gauge", "Twitch Bits per cheer message.", _STREAM
)
CHAT_CHEER_AMOUNT_PER_CHATTER = MetricFamily(
    "livestream_chat_cheer_amount_per_chatter", "gauge", "Twitch Bits per cheering chatter.", _STREAM
)
CHAT_ACTIVE_CHATTERS_TO_VIEWERS_RATIO = MetricFamily(
    "livestream_chat_active_chatters_to_viewers_ratio", "gauge", "Active chatters per viewer (0-1).", _STREAM
)

AUDIENCE_FAMILIES: tuple[MetricFamily, ...] = tuple(
    value for value in list(globals().values()) if isinstance(value, MetricFamily)
)
"""The table, in the order declared above (the order of /metrics)."""
