"""A Streams Charts simulator, written from streamscharts-single-stream-stats.md and
streamscharts-notes.md; it charges credits the way those pages price calls.

Routes (all `GET`, headers `Client-ID` and `Token`, query `platform` required):
- `/api/jazz/channels/{name}/streams/{stream_id}` standard set;
- `/api/jazz/channels/{name}/streams-extra/{stream_id}` extra set (Twitch only);
- `/api/jazz/channels/{name}/streams-extra/{stream_id}/games` standard + all stream games;
- `/api/jazz/channels/{name}/streams-extra/{stream_id}/subs` paid subscribers (Twitch only);
- `/api/jazz/channels/{name}/streams-extra/{stream_id}/chat` chat (Twitch, YouTube, Kick);
- `/api/jazz/channels/{name}?time=today|7-days` single channel stats, standard set.
YouTube channels are found by channel ID only. Platforms listed under "Excluding" get no
`followers_gain` (Rumble: no top game either).

Credits: the first call per channel and set within 30 days costs the set's first price, each next
one the next price (streams: standard 1/0.2, extra 2/0.4, games 2/0.4, subs 1/0.2, chat 1/0.4;
channel stats 1/0.1); only answered calls are charged. A balance too small for a call answers
402 `{"message": "Not enough credits"}`. `testing_mode=true` is free and answers fake data
about a test channel, whatever was asked. The pages document no error bodies; this simulator
answers `{"message": "..."}`. Figures follow `exporter.demo.curve.audience`; a live stream has
`"stream_end": null`. Faults for tests and the demo: see exporter.demo.faults.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

from exporter.demo.curve import audience
from exporter.demo.faults import FaultInjector

ALL_PLATFORMS = {
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
}
AVAILABLE = {
    "standard": ALL_PLATFORMS,
    "extra": {"twitch"},
    "games": ALL_PLATFORMS - {"rumble"},
    "subs": {"twitch"},
    "chat": {"twitch", "youtube", "kick"},
}
NO_FOLLOWERS = {"nimo", "bigo", "nonolive", "afreecatv", "chzzk", "soop", "steam", "rumble"}
PRICES = {
    ("stream", "standard"): (Decimal("1"), Decimal("0.2")),
    ("stream", "extra"): (Decimal("2"), Decimal("0.4")),
    ("stream", "games"): (Decimal("2"), Decimal("0.4")),
    ("stream", "subs"): (Decimal("1"), Decimal("0.2")),
    ("stream", "chat"): (Decimal("1"), Decimal("0.4")),
    ("channel", "standard"): (Decimal("1"), Decimal("0.1")),
}
THIRTY_DAYS = 30 * 86400
STEP = 60
_TEXT = {
    400: "Bad request",
    401: "Unauthorized",
    404: "Not found",
    429: "Too many requests",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
}


def message(status: int, text: str | None = None) -> web.Response:
    return web.json_response({"message": text or _TEXT.get(status, "Error")}, status=status)


@dataclass(frozen=True)
class Stream:
    platform: str
    channel: str
    channel_id: str
    display_name: str
    stream_id: str
    title: str
    language: str
    start: float
    end: float | None
    peak: float
    games: tuple[tuple[str, float], ...]
    """Games in the order played, each with its share of the airtime."""


def fmt(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def figures(stream: Stream, start: float, end: float) -> dict[str, float]:
    """Watch time, airtime, peak and average viewers of a stream between two times."""
    total = peak = 0.0
    ts = start
    while ts < end:
        width = min(STEP, end - ts)
        viewers = audience(ts, stream.peak, period=10800, phase=stream.peak)
        total += viewers * width
        peak = max(peak, viewers)
        ts += width
    airtime = max(0.0, end - start)
    return {
        "hours": total / 3600,
        "minutes": airtime / 60,
        "peak": peak,
        "average": total / airtime if airtime else 0.0,
    }


class StreamsChartsSimulator:
    provider = "streamscharts"

    def __init__(
        self,
        client_id: str | None = None,
        token: str | None = None,
        balance: float = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client_id = client_id or secrets.token_hex(6)
        self.token = token or secrets.token_urlsafe(18)
        self.balance = Decimal(str(balance))
        self.clock = clock
        self.first_calls: dict[tuple[str, str, str, str], float] = {}
        self.charges: list[tuple[str, Decimal]] = []
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.faults = FaultInjector(message)
        now = clock()
        self.streams: dict[tuple[str, str, str], Stream] = {}
        for stream in (
            Stream(
                "twitch", "demo_streamer", "90210001", "Demo_Streamer", "51000000002",
                "ranked grind until platinum", "en", now - 7800, None, 5200.0,
                (("Rocket League", 0.7), ("Just Chatting", 0.3)),
            ),
            Stream(
                "twitch", "demo_streamer", "90210001", "Demo_Streamer", "51000000001",
                "yesterday's marathon", "en", now - 30 * 3600, now - 24 * 3600, 6100.0,
                (("Diablo IV", 0.8), ("Just Chatting", 0.2)),
            ),
            Stream(
                "youtube", "UCdemoChannel00000000001", "13532889480000000001", "Demo IRL", "10203361930000000001",
                "24/7 irl stream, day 3", "en", now - 4 * 3600, None, 21000.0,
                (("IRL", 1.0),),
            ),
            Stream(
                "rumble", "demo_rumbler", "", "Demo Rumbler", "4400001",
                "morning show", "en", now - 3 * 3600, now - 3600, 800.0,
                (("Talk Shows", 1.0),),
            ),
        ):  # fmt: skip
            self.streams[(stream.platform, stream.channel, stream.stream_id)] = stream
        self.testing_stream = Stream(
            "twitch", "testing_channel", "10000001", "Testing_Channel", "40000000001",
            "testing mode stream", "en", now - 10 * 86400, now - 10 * 86400 + 7200, 999.0,
            (("Testing Game", 1.0),),
        )  # fmt: skip

    @property
    def spent(self) -> float:
        return float(sum((cost for _, cost in self.charges), Decimal(0)))

    def price(self, route: str, channel: str, metric_set: str, platform: str, now: float) -> Decimal:
        first, following = PRICES[(route, metric_set)]
        opened = self.first_calls.get((route, platform, channel, metric_set))
        return first if opened is None or now - opened >= THIRTY_DAYS else following

    def charge(self, route: str, channel: str, metric_set: str, platform: str, now: float) -> None:
        key = (route, platform, channel, metric_set)
        cost = self.price(route, channel, metric_set, platform, now)
        if cost == PRICES[(route, metric_set)][0]:
            self.first_calls[key] = now
        self.balance -= cost
        self.charges.append(("/".join(key), cost))

    def authorized(self, request: web.Request) -> bool:
        return request.headers.get("Client-ID") == self.client_id and request.headers.get("Token") == self.token

    async def handle_stream(self, request: web.Request) -> web.Response:
        metric_set = request.match_info.get("set", "extra" if "streams-extra" in request.path else "standard")
        return self.answer(request, "stream", metric_set)

    async def handle_channel(self, request: web.Request) -> web.Response:
        return self.answer(request, "channel", "standard")

    def answer(self, request: web.Request, route: str, metric_set: str) -> web.Response:
        self.requests.append((request.path, dict(request.query)))
        if not self.authorized(request):
            return message(401, "Unauthorized: check your Client-ID and Token")
        platform = request.query.get("platform", "")
        if platform not in AVAILABLE[metric_set]:
            return message(400, f"platform must be one of {', '.join(sorted(AVAILABLE[metric_set]))}")
        channel = request.match_info["name"]
        now = self.clock()
        testing = request.query.get("testing_mode") == "true"
        if route == "channel":
            window = request.query.get("time", "today")
            if window not in ("today", "7-days"):
                return message(400, "the simulator knows time=today and time=7-days")
            streams = [s for s in self.streams.values() if (s.platform, s.channel) == (platform, channel)]
            if testing:
                streams = [self.testing_stream]
            elif not streams:
                return message(404, "Channel not found")
            days = 1 if window == "today" else 7
            midnight = (now // 86400 - (days - 1)) * 86400
            body = self.channel_data(streams, midnight, now)
        else:
            stream = (
                self.testing_stream
                if testing
                else self.streams.get((platform, channel, request.match_info["stream_id"]))
            )
            if stream is None:
                return message(404, "Stream not found")
            body = self.stream_data(stream, metric_set, now)
        if not testing:
            if self.balance < self.price(route, channel, metric_set, platform, now):
                return message(402, "Not enough credits")
            self.charge(route, channel, metric_set, platform, now)
        return web.json_response({"data": body})

    def identity(self, stream: Stream) -> dict[str, Any]:
        return {
            "platform": stream.platform,
            "channel_name": stream.channel,
            "channel_display_name": stream.display_name,
            "channel_id": stream.channel_id,
            "avatar_url": f"https://static.example.invalid/{stream.channel}.png",
        }

    def standard(self, stream: Stream, start: float, end: float) -> dict[str, Any]:
        seen = figures(stream, start, end)
        data: dict[str, Any] = {
            "hours_watched": int(seen["hours"]),
            "airtime_in_m": int(seen["minutes"]),
            "peak_viewers": int(seen["peak"]),
            "average_viewers": int(seen["average"]),
        }
        if stream.platform not in NO_FOLLOWERS:
            data["followers_gain"] = int(seen["hours"] * 0.006)
        if stream.platform != "rumble":
            top, share = max(stream.games, key=lambda game: game[1])
            data["top_game_by_hw"] = top
            data["top_game_by_hw_%"] = round(share * 100, 1)
        return data

    def stream_data(self, stream: Stream, metric_set: str, now: float) -> dict[str, Any]:
        end = min(stream.end or now, now)
        data = {
            **self.identity(stream),
            "stream_id": stream.stream_id,
            "stream_status": stream.title,
            "stream_start": fmt(stream.start),
            "stream_end": fmt(stream.end) if stream.end is not None and stream.end <= now else None,
            "stream_language": stream.language,
        }
        seen = figures(stream, stream.start, end)
        if metric_set in ("standard", "extra", "games"):
            data.update(self.standard(stream, stream.start, end))
        if metric_set == "extra":
            data["extra_metrics"] = self.extra(seen)
        elif metric_set == "games":
            data["all_stream_games"] = self.games(stream, end)
        elif metric_set == "subs":
            data.update(self.subs(seen))
        elif metric_set == "chat":
            data.update(self.chat(stream, seen))
        return data

    def channel_data(self, streams: list[Stream], start: float, now: float) -> dict[str, Any]:
        hours = minutes = peak = 0.0
        for stream in streams:
            begin, end = max(stream.start, start), min(stream.end or now, now)
            if begin < end:
                seen = figures(stream, begin, end)
                hours += seen["hours"]
                minutes += seen["minutes"]
                peak = max(peak, seen["peak"])
        data = {
            **self.identity(streams[0]),
            "hours_watched": int(hours),
            "airtime_in_m": int(minutes),
            "peak_viewers": int(peak),
            "average_viewers": int(hours * 60 / minutes) if minutes else 0,
        }
        if streams[0].platform not in NO_FOLLOWERS:
            data["followers_gain"] = int(hours * 0.006)
        return data

    @staticmethod
    def extra(seen: dict[str, float]) -> dict[str, Any]:
        live_views = int(seen["average"] * (1 + seen["minutes"] / 60 * 3.5))
        unique = int(live_views * 0.38)
        return {
            "live_views": live_views,
            "unique_viewers": unique,
            "unique_auth_viewers": int(unique * 0.83),
            "peak_auth_viewers": int(seen["peak"] * 0.77),
            "auth_viewers_average_view_duration_in_m": int(min(seen["minutes"], 43)),
            "authorized_to_all_viewers_ratio_%": 83,
            "viewers_from_last_stream_%": 69.4,
            "returned_viewers_%": 35.3,
            "estimated_audience": int(unique * 0.94),
            "estimated_audience_average_view_duration_in_m": int(min(seen["minutes"], 42)),
        }

    def games(self, stream: Stream, end: float) -> list[dict[str, Any]]:
        """Each game's slice of the airtime, in the order played; some numbers are strings, as in the
        vendor's example."""
        played = []
        begin = stream.start
        for name, share in stream.games:
            slice_end = min(end, begin + share * ((stream.end or end) - stream.start))
            if begin >= slice_end:
                break
            seen = figures(stream, begin, slice_end)
            game = {
                "name": name,
                "hours_watched": int(seen["hours"]),
                "peak_viewers": int(seen["peak"]),
                "average_viewers": int(seen["average"]),
                "airtime_in_m": str(int(seen["minutes"])),
            }
            if stream.platform not in NO_FOLLOWERS:
                game["followers_gain"] = str(int(seen["hours"] * 0.006))
            played.append(game)
            begin = slice_end
        return played

    @staticmethod
    def subs(seen: dict[str, float]) -> dict[str, Any]:
        total = int(seen["hours"] * 0.00067)
        paid = round(total * 0.94)
        new = round(paid * 0.47)
        prime = round(total * 0.62)
        tier_3 = total // 80
        return {
            "total_subs": total,
            "min_income_from_subs_in_$": int(paid * 2),
            "max_income_from_subs_in_$": int(paid * 2.9),
            "new_subs": new,
            "re_subs": paid - new,
            "paid_subs": paid,
            "gifted_subs": total - paid,
            "prime_subs": prime,
            "tier_1_subs": total - prime - tier_3,
            "tier_2_subs": 0,
            "tier_3_subs": tier_3,
        }

    @staticmethod
    def chat(stream: Stream, seen: dict[str, float]) -> dict[str, Any]:
        messages = int(seen["hours"] * 0.084) + 1
        active = max(1, int(messages / 2.7))
        single = int(active * 0.61)
        data: dict[str, Any] = {
            "total_messages": messages,
            "total_words_count": int(messages * 6.6),
            "active_chatters": active,
            "messages_per_chatter": round(messages / active, 1),
            "chatters_with_1_message": single,
            "chatters_with_2+_message": active - single,
        }
        if stream.platform != "twitch":
            data["active_chatters_to_viewers_ratio_%"] = round(active / max(seen["peak"], 1) * 100, 1)
            return data
        passive = int(seen["peak"] * 8)
        cheers = messages // 9000 + 1
        bits = cheers * 1000
        data.update(
            {
                "passive_chatters": passive,
                "chat_engagement_rate_%": active / (active + passive) * 100,
                "cheer_messages": cheers,
                "cheer_chatters": cheers,
                "total_bits": bits,
                "income_from_bits_in_$": bits // 100,
                "bits_per_cheered_message": bits // cheers,
                "bits_per_cheered_chatter": bits // cheers,
            }
        )
        return data

    def app(self) -> web.Application:
        app = self.faults.application()
        app.router.add_get("/api/jazz/channels/{name}", self.handle_channel)
        app.router.add_get("/api/jazz/channels/{name}/streams/{stream_id}", self.handle_stream)
        app.router.add_get("/api/jazz/channels/{name}/streams-extra/{stream_id}", self.handle_stream)
        app.router.add_get(
            "/api/jazz/channels/{name}/streams-extra/{stream_id}/{set:games|subs|chat}", self.handle_stream
        )
        return app

    def demo_sources(self, base_url: str) -> list[dict[str, Any]]:
        """A live and an ended Twitch stream, a live YouTube stream, a followed channel, every set,
        and a budget that lasts a couple of hours of demo polling."""
        return [
            {
                "name": "demo-streamscharts",
                "provider": "streamscharts",
                "base_url": base_url,
                "client_id": self.client_id,
                "token": self.token,
                "streams": [
                    {"platform": s.platform, "channel": s.channel, "stream_id": s.stream_id}
                    for s in self.streams.values()
                    if s.platform != "rumble"
                ],
                "channels": [{"platform": "twitch", "channel": "demo_streamer"}],
                "metric_sets": ["standard", "extra", "games", "subs", "chat"],
                "credits_budget": 500,
                "interval": "30s",
            }
        ]


def simulator() -> StreamsChartsSimulator:
    return StreamsChartsSimulator()
