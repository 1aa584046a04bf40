"""The landing page in Debian's headless Chromium, served by a running `--demo` exporter: it
refreshes by itself, and the audience and credits it shows are those on /metrics."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.cli import unstarted_simulators
from exporter.config import parse_config
from tests.browser import CHROMIUM_MISSING, HeadlessChromium, Page, chromium_binary
from tests.conftest import REPO_ROOT, ExporterProcess, http_get

pytestmark = pytest.mark.skipif(chromium_binary() is None, reason=CHROMIUM_MISSING)

ARTEFACTS = REPO_ROOT / "test-artefacts"
"""Screenshots for a person to look at (git-ignored)."""
VIEWER_FAMILIES = ("livestream_concurrent_viewers", "livestream_unique_viewers")
SHOWN = """JSON.stringify({
  rendered: document.getElementById("rendered").textContent,
  audience: Object.fromEntries([...document.querySelectorAll("td.audience")].map(c => [c.dataset.source, c.textContent])),
  credits: Object.fromEntries([...document.querySelectorAll("td.credits")].map(c => [c.dataset.source, c.textContent])),
  sparklines: [...document.querySelectorAll("svg.spark polyline")].length,
  demo: document.getElementById("demo-banner")?.textContent ?? "",
  warning: document.getElementById("listen-warning") !== null,
})"""


def figures_on_metrics(text: str) -> tuple[dict[str, float], dict[str, float]]:
    """(audience per source, credits left per source) as /metrics says."""
    audience: dict[str, float] = defaultdict(float)
    credits: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in VIEWER_FAMILIES:
                audience[sample.labels["source"]] += sample.value
            elif sample.name == "livestream_exporter_credits_remaining":
                credits[sample.labels["source"]] = sample.value
    return dict(audience), credits


def shown_number(text: str) -> float | None:
    return None if text == "—" else float(text.replace(",", ""))


async def page_and_metrics_of_one_moment(page: Page, exporter: ExporterProcess) -> tuple[dict, str]:
    """The page's figures and /metrics read while no poll changed them: a poll that lands between
    the two reads shows as /metrics differing before and after; then the next refresh is read."""

    while True:
        before = exporter.metrics()
        shown = json.loads(await page.evaluate(SHOWN))
        after = exporter.metrics()
        if figures_on_metrics(before) == figures_on_metrics(after):
            return shown, after
        await page.event("Page.loadEventFired")


@pytest.fixture
def demo_exporter(tmp_path: Path):
    exporter = ExporterProcess(["--demo"], tmp_path)
    try:
        exporter.wait_until(lambda: http_get(f"{exporter.base_url}/-/ready")[0] == 200, timeout=30)
        yield exporter
    finally:
        exporter.stop()


async def test_landing_page_refreshes_and_shows_the_audience_and_credits_of_metrics(
    demo_exporter: ExporterProcess, tmp_path: Path
) -> None:

    async with HeadlessChromium(tmp_path) as browser:
        page = await browser.page()
        await page.call("Page.enable")
        await page.call("Page.navigate", url=f"{demo_exporter.base_url}/")
        await page.event("Page.loadEventFired")
        first = json.loads(await page.evaluate(SHOWN))
        await page.event("Page.loadEventFired")  # the page's own refresh, a few seconds later
        shown, metrics = await page_and_metrics_of_one_moment(page, demo_exporter)
        ARTEFACTS.mkdir(exist_ok=True)
        await page.screenshot(ARTEFACTS / "landing-demo.png")

    assert shown["rendered"] != first["rendered"], "the page did not refresh"
    audience, credits = figures_on_metrics(metrics)
    assert audience and credits, "the demo exports viewer gauges and a credit budget"
    assert {source for source, text in shown["audience"].items() if text != "—"} == set(audience)
    for source, value in audience.items():
        assert shown_number(shown["audience"][source]) == round(value), source
    assert {source for source, text in shown["credits"].items() if text != "—"} == set(credits)
    for source, value in credits.items():
        assert shown_number(shown["credits"][source]) == round(value, 1), source
    assert shown["sparklines"] == len(audience)
    assert not shown["warning"], "127.0.0.1 is not every interface"


async def test_demo_banner_names_every_simulator_and_how_to_make_one_fail(
    demo_exporter: ExporterProcess, tmp_path: Path
) -> None:

    async with HeadlessChromium(tmp_path) as browser:
        page = await browser.page()
        await page.call("Page.enable")
        await page.call("Page.navigate", url=f"{demo_exporter.base_url}/")
        await page.event("Page.loadEventFired")
        shown = json.loads(await page.evaluate(SHOWN))
        html = await page.evaluate("document.documentElement.outerHTML")
    for provider in ("cloudflare", "gcore", "lls", "naver", "streamscharts"):
        assert f"{provider}: http://127.0.0.1:" in shown["demo"]
    assert "/_sim/fault" in shown["demo"] and '"status": 503' in shown["demo"]
    demo = parse_config({"sources": unstarted_simulators().sources}, "<demo>", REPO_ROOT)
    secrets = demo.secret_values()
    assert secrets and not [secret for secret in secrets if secret in html]
