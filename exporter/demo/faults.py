"""Fault injection shared by every simulator, so tests and `--demo` can show a failing vendor.

`POST /_sim/fault` with a JSON object sets the fault for every later vendor request until
`POST /_sim/fault` with `{}` clears it; `GET /_sim/fault` shows the current one. Keys, combinable:

- `delay`: seconds to wait before answering (longer than the exporter's timeout: a hang). A
  waiting request is let go as soon as the fault is cleared or the simulator stops;
- `close`: `true` drops the connection without answering (the client sees a disconnect);
- `status`: the HTTP status to answer with (default 500 when another key asks for a failure);
- `retry_after`: a `Retry-After` header value (seconds or an HTTP date), e.g. with status 429;
- `body`: a raw text body (an HTML error page, or truncated JSON), served as `content_type`
  (default text/html);
- `json`: any JSON body, served with `status` or 200;
- `drift`: answer with the simulator's own good body after a shape drift, for every vendor
  alike: `nulls` (lists and objects inside the top-level object, or inside the records of a
  top-level list, are null: `{"data": null}`), `missing_keys` (every object is empty) or
  `wrong_types` (in every object, lists become objects, objects lists, numbers strings and
  strings numbers);
- `times`: answer faultily only this many times, then recover by itself.

In `body` and in the strings of `json`, `{request}` is replaced by the request line and headers,
like a vendor or proxy that echoes the request into its error (credentials included).
Without `body`, `json` or `drift`, the simulator's own documented error body for `status` is used.
This is test plumbing, not wire format: it never parses or builds a vendor request.

    curl -X POST -d '{"status": 503, "retry_after": 30}' http://127.0.0.1:PORT/_sim/fault
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

ErrorBody = Callable[[int], web.Response]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

FAULT_PATH = "/_sim/fault"
DRIFTS = ("nulls", "missing_keys", "wrong_types")


def _null_containers(record: dict[str, Any]) -> dict[str, Any]:
    return {key: None if isinstance(item, list | dict) else item for key, item in record.items()}


def _nulls(body: Any) -> Any:
    if isinstance(body, dict):
        return _null_containers(body)
    if isinstance(body, list):
        return [_null_containers(item) if isinstance(item, dict) else None for item in body]
    return body


def _missing_keys(value: Any) -> Any:
    if isinstance(value, list):
        return [_missing_keys(item) for item in value]
    return {} if isinstance(value, dict) else value


def _wrong_type(value: Any) -> Any:
    if isinstance(value, list):
        return {}
    if isinstance(value, dict):
        return []
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    return 0


def _wrong_types(value: Any) -> Any:
    if isinstance(value, list):
        return [_wrong_types(item) for item in value]
    if isinstance(value, dict):
        return {key: _wrong_type(item) for key, item in value.items()}
    return value


def drift(body: Any, how: str) -> Any:
    """A good JSON body with its shape drifted in one of the ways of DRIFTS."""
    if how == "nulls":
        return _nulls(body)
    if how == "missing_keys":
        return _missing_keys(body)
    if how == "wrong_types":
        return _wrong_types(body)
    raise ValueError(f"drift must be one of {', '.join(DRIFTS)}")


def _echo(value: Any, request_text: str) -> Any:
    if isinstance(value, str):
        return value.replace("{request}", request_text)
    if isinstance(value, list):
        return [_echo(item, request_text) for item in value]
    if isinstance(value, dict):
        return {key: _echo(item, request_text) for key, item in value.items()}
    return value


def describe_request(request: web.Request) -> str:
    headers = " ".join(f"{name}: {value}" for name, value in request.headers.items())
    return f"{request.method} {request.url} {headers}"


class FaultInjector:
    def __init__(self, error_body: ErrorBody) -> None:
        self.error_body = error_body
        self.fault: dict[str, Any] = {}
        self.held = 0
        """Requests waiting in a `delay` right now (tests wait for one to be in flight)."""
        self.last_drift: tuple[Any, Any] | None = None
        """The last good body and what `drift` made of it (tests check that it changed)."""
        self._released = asyncio.Event()

    def set(self, fault: dict[str, Any]) -> None:
        """Replace the fault; requests held by the previous one's `delay` are let go."""
        self._released.set()
        self._released = asyncio.Event()
        self.fault = dict(fault)

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
            released = self._released
            self.held += 1
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(released.wait(), float(fault["delay"]))
            finally:
                self.held -= 1
        if fault.get("close"):
            request.transport.close()
            return web.Response(status=500)
        if "drift" in fault:
            return await self._drifted(request, handler, str(fault["drift"]))
        if not {"status", "body", "json"} & set(fault):
            return await handler(request)
        headers = {"Retry-After": str(fault["retry_after"])} if "retry_after" in fault else {}
        request_text = describe_request(request)
        if "json" in fault:
            return web.Response(
                status=int(fault.get("status", 200)),
                text=json.dumps(_echo(fault["json"], request_text)),
                content_type="application/json",
                headers=headers,
            )
        status = int(fault.get("status", 500))
        if "body" in fault:
            return web.Response(
                status=status,
                text=_echo(str(fault["body"]), request_text),
                content_type=str(fault.get("content_type", "text/html")),
                headers=headers,
            )
        response = self.error_body(status)
        response.headers.update(headers)
        return response

    async def _drifted(self, request: web.Request, handler: Handler, how: str) -> web.StreamResponse:
        response = await handler(request)
        if not isinstance(response, web.Response) or response.status != 200 or response.body is None:
            return response
        try:
            good = json.loads(response.text or "")
        except ValueError:
            return response
        drifted = drift(good, how)
        self.last_drift = (good, drifted)
        return web.Response(text=json.dumps(drifted), content_type="application/json")

    async def handle_set(self, request: web.Request) -> web.Response:
        body = await request.json()
        fault = body if isinstance(body, dict) else {}
        if "drift" in fault and fault["drift"] not in DRIFTS:
            return web.json_response({"error": f"drift must be one of {', '.join(DRIFTS)}"}, status=400)
        self.set(fault)
        return web.json_response(self.fault)

    async def handle_get(self, request: web.Request) -> web.Response:
        return web.json_response(self.fault)

    async def _release_on_shutdown(self, app: web.Application) -> None:
        self._released.set()

    def application(self) -> web.Application:
        """A new simulator app with fault injection installed."""
        app = web.Application(middlewares=[self.middleware])
        app.router.add_post(FAULT_PATH, self.handle_set)
        app.router.add_get(FAULT_PATH, self.handle_get)
        app.on_shutdown.append(self._release_on_shutdown)
        return app
