"""Golden exposition per vendor, json_exporter style: `tests/golden/<vendor>.yaml` names a
vendor's documented example body (verbatim in `tests/fixtures/`) and a source; a loopback
server answers that body to every request, the real exporter (config, provider, fetcher,
scheduler, audience store, exposition, HTTP server) polls it once, and `/metrics` must read
exactly `tests/golden/<vendor>.txt`, line by line.

Compared: every audience line (HELP, TYPE, series) and the source's `source_up` and
`rejected_points_total` series. The other self-metrics (durations, timestamps) vary per run.

A new vendor adds its two golden files, nothing here. To write or refresh a `.txt` after a
deliberate change, run with `LIVESTREAM_GOLDEN_UPDATE=1` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from exporter.cli import Exporter
from exporter.config import parse_config
from exporter.logs import Redactor
from exporter.web import build_app
from tests.conftest import FIXTURES

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
CASES = sorted(GOLDEN.glob("*.yaml"))
KEPT_SELF_METRICS = ("livestream_exporter_source_up{", "livestream_exporter_rejected_points_total{")


def answering(body: bytes) -> tuple[web.Application, list[str]]:
    """A vendor that answers its documented example to every GET, recording the paths asked."""
    asked: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app, asked


def compared(exposition: str) -> list[str]:
    return [
        line
        for line in exposition.splitlines()
        if ("livestream_" in line and "livestream_exporter_" not in line) or line.startswith(KEPT_SELF_METRICS)
    ]


async def scraped(case: dict[str, Any], base_url: str, state_dir: Path, serve_app) -> str:
    config = parse_config(
        {"global": {"state_dir": str(state_dir)}, "sources": [{**case["source"], "base_url": base_url}]},
        "golden.yaml",
        state_dir,
    )
    exporter = Exporter(config, Redactor())
    await exporter.scheduler.open()
    try:
        assert await exporter.scheduler.poll_all_once()
        exporter_url = await serve_app(build_app(exporter.scheduler, exporter.exposition, "/metrics"))
        async with aiohttp.ClientSession() as session, session.get(f"{exporter_url}/metrics") as response:
            assert response.status == 200
            return await response.text()
    finally:
        await exporter.scheduler.close()


def test_every_vendor_has_a_golden_case() -> None:
    from exporter.providers import providers

    assert {path.stem for path in CASES} == set(providers())


@pytest.mark.parametrize("case_path", CASES, ids=lambda path: path.stem)
async def test_the_documented_example_renders_exactly_the_golden_exposition(
    case_path: Path, serve_app, tmp_path: Path
) -> None:
    case = yaml.safe_load(case_path.read_text())
    app, asked = answering((FIXTURES / case["answer"]).read_bytes())
    text = await scraped(case, await serve_app(app), tmp_path, serve_app)
    assert asked, "the vendor was never asked"
    actual = compared(text)
    golden = case_path.with_suffix(".txt")
    if os.environ.get("LIVESTREAM_GOLDEN_UPDATE") == "1":
        golden.write_text("".join(f"{line}\n" for line in actual))
    assert actual == golden.read_text().splitlines()
