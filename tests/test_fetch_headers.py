"""An answer whose headers pass aiohttp's line limit is an unreadable answer (`invalid_body`),
said in those words, never "ClientResponseError: HTTP 400" counted as `connect_error`."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from exporter.poll import PollError

HEADER_VALUE = "vendor-secret-" + "a" * 20_000


async def test_headers_too_long_fail_the_request_as_invalid_body_without_their_content(
    serve_app: Any, fetcher: Any
) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response({}, headers={"X-Trace": HEADER_VALUE})

    app = web.Application()
    app.router.add_get("/viewers", answer)
    base_url = await serve_app(app)

    with pytest.raises(PollError) as failure:
        async with fetcher.get("viewers", base_url + "/viewers"):
            pass

    assert failure.value.code == "invalid_body"
    assert str(failure.value).startswith("viewers: answer headers too long (Got more than 8190 bytes")
    assert "vendor-secret" not in str(failure.value) and "400" not in str(failure.value)
    assert fetcher.observer_record.requests == [("viewers", "invalid_body")]


async def test_a_vendor_that_cannot_be_reached_is_still_a_connect_error(fetcher: Any) -> None:
    with pytest.raises(PollError) as failure:
        async with fetcher.get("viewers", "http://127.0.0.1:9/viewers"):
            pass
    assert failure.value.code == "connect_error"
