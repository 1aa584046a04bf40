"""`--demo` shows Cloudflare's day-wise counters and Streams Charts' streams, channel and credits."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import http_get


def test_demo_shows_cloudflare_and_streamscharts_metrics(run_exporter) -> None:
    exporter = run_exporter("--demo")
    exporter.wait_until(lambda: http_get(f"{exporter.base_url}/-/ready")[0] == 200, timeout=15)
    body = exporter.metrics()
    samples = {f.name: f.samples for f in text_string_to_metric_families(body)}
    sessions = [s for s in samples["livestream_sessions"] if s.labels["provider"] == "cloudflare"]
    assert sessions and sessions[0].value > 0
    info = [s for s in samples["livestream_stream_info"] if s.labels["provider"] == "streamscharts"]
    assert {"title", "language", "top_game", "channel_id", "platform", "channel", "stream"} <= set(info[0].labels)
    peak = samples["livestream_peak_viewers"]
    assert any(s.labels.get("window") == "today" for s in peak)
    assert any(s.labels.get("stream") for s in peak)
    for family in ("livestream_chat_messages", "livestream_game_viewer_seconds", "livestream_subscriptions",
                   "livestream_live_views"):  # fmt: skip
        assert samples[family], family
    [spent] = samples["livestream_exporter_credits_spent"]
    [remaining] = samples["livestream_exporter_credits_remaining"]
    assert spent.value > 0 and remaining.value == pytest.approx(500 - spent.value)
