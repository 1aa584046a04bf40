"""Fault injection shared by every simulator, so tests and `--demo` can show a failing vendor.

`POST /_sim/fault` with a JSON object sets the fault for every later vendor request until
`POST /_sim/fault` with `{}` clears it. Keys, combinable:

- `delay`: seconds to wait before answering (longer than the exporter's timeout: a hang);
- `status`: the HTTP status to answer with (default 500 when another key asks for a failure);
- `retry_after`: a `Retry-After` header value (seconds or an HTTP date), e.g. with status 429;
- `body`: a raw text body (e.g. an HTML error page), served as text/html;
- `json`: any JSON body (e.g. a drifted shape), served with `status` or 200;
- `times`: answer faultily only this many times, then recover by itself.

Without `body` or `json`, the simulator's own documented error body for `status` is used.
This is test plumbing, not wire format: it never parses or builds a vendor request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

ErrorBody = Callable[[int], web.Response]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

FAULT_PATH = "/_sim/fault"


class FaultInjector:
    def __init__(self, error_body: ErrorBody) -> None:
        self.error_body = error_body
        self.fault: dict[str, Any] = {}

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        fault = self.fault
        if not fault or request.path.startswith("/_sim/"):
            return await handler(request)
        if "times" in fault:
            fault["times"] -= 1
            if fault["times"] <= 0:
                self.fault = {}
        if "delay" in fault:
            await asyncio.sleep(float(fault["delay"]))
        if not {"status", "body", "json"} & set(fault):
            return await handler(request)
        headers = {"Retry-After": str(fault["retry_after"])} if "retry_after" in fault else {}
        if "json" in fault:
            return web.Response(
                status=int(fault.get("status", 200)),
                text=json.dumps(fault["json"]),
                content_type="application/json",
                headers=headers,
            )
        status = int(fault.get("status", 500))
        if "body" in fault:
            return web.Response(status=status, text=str(fault["body"]), content_type="text/html", headers=headers)
        response = self.error_body(status)
        response.headers.update(headers)
        return response

    async def handle_set(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.fault = body if isinstance(body, dict) else {}
        return web.json_response(self.fault)

    def application(self) -> web.Application:
        """A new simulator app with fault injection installed."""
        app = web.Application(middlewares=[self.middleware])
        app.router.add_post(FAULT_PATH, self.handle_set)
        return app
