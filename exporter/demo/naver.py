"""A NAVER Cloud VPE Media Analytics simulator, written from naver-vpe-current-viewers.md and
naver-vpe-notes.md with its own code.

`GET /v1/charts/currentViewers` with headers `x-api-key` and `x-project-id` and optional query
`device` (`PC,Mobile` default, `PC`, `Mobile`) and `videoType` (`VOD,LIVE` default, `VOD`,
`LIVE`) answers `{"code": 200, "message": "currentViewers (1m)", "result": [...]}` with the 60
newest one-minute points, newest first, each `{"currentViewerCnt", "logDate"}` where `logDate`
is `YYYY-MM-DD HH:MM:SS` wall-clock time in Asia/Seoul (the zone the console defaults to) and
the newest point is the last whole minute.

With `table_shape` the answer follows the page's response table instead of its example: `code`
is the string `"200"` and `result` one object, the newest point.

Failures come as NAVER sends them, with HTTP 200 and `{"error": {"errorCode", "message"}}`:
`Unauthorized` for a wrong key or company id, `4601` for a bad `device`, `4610` for a bad
`videoType` (which parameter error gets which of the documented codes is our choice).

Faults for tests and the demo: see exporter.demo.faults (`POST /_sim/fault`). `{"status": 200}`
answers the documented error inside a 200 (`4100 No version information.`); any other status
answers `{"error": {"errorCode": "<status>", "message": ...}}` with that status.
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from exporter.demo.curve import audience
from exporter.demo.faults import FaultInjector

PATH = "/v1/charts/currentViewers"
ZONE = ZoneInfo("Asia/Seoul")
POINTS = 60
PEAK = 1800.0
DEVICE_SHARE = {"PC,Mobile": 1.0, "PC": 0.35, "Mobile": 0.65}
VIDEO_TYPE_SHARE = {"VOD,LIVE": 1.0, "VOD": 0.2, "LIVE": 0.8}
ERROR_IN_200 = {"errorCode": "4100", "message": "No version information."}


def _error(error_code: str, message: str, status: int = 200) -> web.Response:
    return web.json_response({"error": {"errorCode": error_code, "message": message}}, status=status)


def _fault_body(status: int) -> web.Response:
    if status == 200:
        return _error(ERROR_IN_200["errorCode"], ERROR_IN_200["message"])
    return _error(str(status), "Service error.", status)


def seoul_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, ZONE).strftime("%Y-%m-%d %H:%M:%S")


class NaverSimulator:
    provider = "naver"

    def __init__(
        self,
        api_key: str | None = None,
        project_id: str | None = None,
        clock: Any = time.time,
        table_shape: bool = False,
    ) -> None:
        self.table_shape = table_shape
        self.api_key = api_key or secrets.token_hex(20)
        self.project_id = project_id or f"company-{secrets.randbelow(900000) + 100000}"
        self.clock = clock
        self.faults = FaultInjector(_fault_body)
        self.requests: list[dict[str, str]] = []

    @staticmethod
    def viewers_at(minute: int, device: str = "PC,Mobile", video_type: str = "VOD,LIVE") -> int:
        """The one-minute point of `minute` (Unix seconds): a pure function of time, so a test
        knows every value the last hour of answers holds."""
        share = DEVICE_SHARE[device] * VIDEO_TYPE_SHARE[video_type]
        return round(audience(minute, PEAK * share, phase=7.0))

    async def handle_current_viewers(self, request: web.Request) -> web.Response:
        self.requests.append(dict(request.query))
        if request.headers.get("x-api-key") != self.api_key or request.headers.get("x-project-id") != self.project_id:
            return _error("Unauthorized", "Unauthorized")
        device = request.query.get("device", "PC,Mobile")
        video_type = request.query.get("videoType", "VOD,LIVE")
        if device not in DEVICE_SHARE:
            return _error("4601", "Invalid parameter: device")
        if video_type not in VIDEO_TYPE_SHARE:
            return _error("4610", "Invalid parameter: videoType")
        newest = int(self.clock()) // 60 * 60 - 60
        minutes = [newest - 60 * back for back in range(POINTS)]
        result = [
            {"currentViewerCnt": self.viewers_at(minute, device, video_type), "logDate": seoul_time(minute)}
            for minute in minutes
        ]
        if self.table_shape:
            return web.json_response({"code": "200", "message": "currentViewers (1m)", "result": result[0]})
        return web.json_response({"code": 200, "message": "currentViewers (1m)", "result": result})

    def app(self) -> web.Application:
        app = self.faults.application()
        app.router.add_get(PATH, self.handle_current_viewers)
        return app

    def demo_sources(self, base_url: str) -> list[dict[str, Any]]:
        common = {"provider": "naver", "base_url": base_url, "api_key": self.api_key, "project_id": self.project_id}
        return [
            {"name": "demo-naver", **common, "interval": "15s"},
            {"name": "demo-naver-mobile-live", **common, "device": "Mobile", "video_type": "LIVE", "interval": "30s"},
        ]


def simulator() -> NaverSimulator:
    return NaverSimulator()
