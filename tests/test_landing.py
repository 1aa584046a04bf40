"""The landing page: each source's audience, last hour and credits, kept in memory from its polls."""

from __future__ import annotations

from pathlib import Path

from exporter.config import parse_config
from exporter.landing import AudienceHistory, LandingContext, exposed, render, sparkline
from exporter.poll import ALL_UNITS, PollError, PollResult, Sample
from exporter.selfmetrics import ExporterMetrics
from exporter.sharding import resolve
from exporter.sources import SourceFactory
from tests.conftest import ExporterProcess, free_port, http_get


def viewers(*values: float, credits: float | None = None) -> PollResult:
    samples = {
        f"stream-{index}": [
            Sample.of("livestream_concurrent_viewers", value, stream=str(index)),
            Sample.of("livestream_peak_viewers", 10 * value, stream=str(index)),
        ]
        for index, value in enumerate(values)
    }
    return PollResult(samples=samples, credits_remaining=credits)


async def test_audience_is_the_sum_of_the_viewer_gauges_of_the_last_good_poll() -> None:
    history = AudienceHistory()
    await history.record("lls", viewers(120, 30), now=1000.0)
    assert history.figures("lls").audience == 150
    await history.record("lls", PollResult(failures={ALL_UNITS: PollError("HTTP 503")}), now=1060.0)
    assert history.figures("lls").audience == 150
    assert [value for _, value in history.figures("lls").history] == [150]


async def test_unique_viewers_count_as_audience_too() -> None:
    history = AudienceHistory()
    result = PollResult(samples={"42": [Sample.of("livestream_unique_viewers", 7, stream="42", granularity="1m")]})
    await history.record("gcore", result, now=1000.0)
    assert history.figures("gcore").audience == 7


async def test_a_source_without_viewer_gauges_has_no_audience_but_its_credits() -> None:
    history = AudienceHistory()
    await history.record(
        "sc", PollResult(samples={"s": [Sample.of("livestream_peak_viewers", 9)]}, credits_remaining=41.5), 1.0
    )
    assert history.figures("sc").audience is None
    assert history.figures("sc").credits_left == 41.5


async def test_history_keeps_only_the_last_hour() -> None:
    history = AudienceHistory()
    for minute in range(90):
        await history.record("lls", viewers(minute), now=60.0 * minute)
    kept = history.figures("lls").history
    assert kept[0][0] == 60.0 * 89 - 3600 and kept[-1] == (60.0 * 89, 89)


def test_sparkline_spans_the_hour_and_the_audience_range() -> None:
    svg = sparkline([(0.0, 10.0), (1800.0, 30.0), (3600.0, 20.0)], now=3600.0)
    assert 'points="2.0,22.0 60.0,2.0 118.0,12.0"' in svg
    assert "between 10 and 30" in svg
    assert sparkline([], now=0.0) == ""


def test_listen_warning_only_for_every_interface_without_a_web_config() -> None:
    assert exposed(":9877", None, protected=False) == ":9877"
    assert exposed("0.0.0.0:9877", "0.0.0.0", protected=False) == "0.0.0.0:9877"
    assert exposed(":9877", None, protected=True) is None
    assert exposed("127.0.0.1:9877", "127.0.0.1", protected=False) is None


def test_page_warns_when_the_exporter_serves_every_interface_unprotected(tmp_path: Path) -> None:
    port = free_port()
    exporter = ExporterProcess(["--demo", f"--web.listen-address=:{port}"], tmp_path)  # the later flag wins
    try:
        landing = f"http://127.0.0.1:{port}/"
        _, _, body = exporter.wait_until(lambda: (answer := http_get(landing))[0] == 200 and answer)
        page = body.decode()
        assert 'id="listen-warning"' in page and f"<code>:{port}</code>" in page
    finally:
        exporter.stop()


class FillingGaps:
    """The gap filler as the page reads it: one source has a gap being filled."""

    def status(self, source: str) -> str | None:
        return "filling a gap since 2026-11-29T10:00:00Z" if source == "gcore-a" else None


def test_a_source_with_a_gap_being_filled_gets_a_line_of_its_own(tmp_path: Path) -> None:
    config = parse_config(
        {
            "global": {"state_dir": str(tmp_path)},
            "sources": [
                {"name": name, "provider": "gcore", "api_key": "k" * 24, "base_url": "http://127.0.0.1:9"}
                for name in ("gcore-a", "gcore-b")
            ],
        },
        "config.yaml",
        tmp_path,
    )
    factory = SourceFactory(resolve(0, 1), ExporterMetrics("t", "3"), str)
    runtimes = [factory.build(settings, config, {}) for settings in config.sources]
    page = render(runtimes, AudienceHistory(), FillingGaps(), LandingContext(), "/metrics", 1000.0)
    assert page.count('class="gap"') == 1
    assert "gcore-a: filling a gap since 2026-11-29T10:00:00Z" in page
