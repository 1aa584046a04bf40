"""Issue 15, item 3, on a running exporter: a source whose own request got a 429 waits for its
credential's pause like every other source on that key, and says so (`source_rate_limited` 1,
"rate limited" on the landing page), also when the vendor's `Retry-After` is missing or
unreadable (`²`, ignored with a debug line, never an internal error)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from exporter.providers.lls import PATH
from tests.conftest import http_get

ANSWERED_429 = (
    'livestream_exporter_requests_total{code="429",endpoint="concurrent_viewers",provider="lls",source="hit"}'
)


def lls_source(name: str, base_url: str, app: str) -> str:
    return (
        f"  - {{name: {name}, provider: lls, base_url: '{base_url}', access_key_id: AKID-shared,"
        f" access_key_secret: s3cret-value, domain: live.example.com, app: {app}, interval: 60s}}\n"
    )


def landing_state(landing: str, source: str) -> str:
    """The state cell of a source's row on the landing page, as text."""
    row = re.search(rf"<tr[^>]*>\s*<td[^>]*>{source}</td>.*?</tr>", landing, re.S)
    assert row is not None, landing
    return re.sub(r"<[^>]+>", " ", row.group(0))


@pytest.mark.parametrize("retry_after", ["²", None], ids=["unreadable", "absent"])
async def test_the_source_that_got_a_429_without_a_usable_retry_after_shows_it_waits(
    serve_app: Any, run_exporter: Any, tmp_path: Path, retry_after: str | None
) -> None:
    async def viewers(request: web.Request) -> web.Response:
        if request.query.get("app") == "hit":
            headers = {} if retry_after is None else {"Retry-After": retry_after}
            return web.json_response({"code": "TooManyRequests"}, status=429, headers=headers)
        return web.json_response({"domain": "live.example.com", "data": []})

    app = web.Application()
    app.router.add_get(PATH, viewers)
    base_url = await serve_app(app)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"global: {{state_dir: '{tmp_path}'}}\nsources:\n"
        + lls_source("hit", base_url, "hit")
        + lls_source("other", base_url, "other")
    )
    exporter = run_exporter("--config", str(config), "--log.level=debug")
    await asyncio.to_thread(check_hit_waits_after_its_first_poll, exporter, retry_after)


def check_hit_waits_after_its_first_poll(exporter: Any, retry_after: str | None) -> None:
    """Read while the vendor's loop runs, once the first poll of `hit` is logged as failed (the
    scheduler logs it after planning the retry); its next poll is a minute away."""
    exporter.wait_until(lambda: 'msg="poll failed" source=hit' in exporter.log())
    metrics = exporter.metrics()
    assert ANSWERED_429 in metrics
    assert 'livestream_exporter_source_rate_limited{provider="lls",source="hit"} 1.0' in metrics
    assert 'livestream_exporter_source_up{provider="lls",source="hit"} 0.0' in metrics
    assert "rate limited" in landing_state(http_get(exporter.base_url + "/")[2].decode(), "hit")
    log = exporter.log()
    assert "internal error" not in log
    if retry_after is not None:
        assert "unreadable Retry-After ignored" in log
