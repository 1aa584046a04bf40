"""`--demo` shows LLS and NAVER concurrent viewers next to Gcore's, from their simulators."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def test_demo_shows_concurrent_viewers_of_lls_and_naver(run_exporter) -> None:
    exporter = run_exporter("--demo")

    def both_vendors() -> str | None:
        text = exporter.metrics()
        wanted = (
            'livestream_concurrent_viewers{source="demo-lls"',
            'livestream_concurrent_viewers{source="demo-naver"',
        )
        return text if all(series in text for series in wanted) else None

    body = exporter.wait_until(both_vendors, timeout=15)
    families = {family.name: family for family in text_string_to_metric_families(body)}
    by_provider: dict[str, list] = {}
    for sample in families["livestream_concurrent_viewers"].samples:
        by_provider.setdefault(sample.labels["provider"], []).append(sample)
    assert {"domain", "app", "stream", "region", "protocol"} <= set(by_provider["lls"][0].labels)
    assert {"device", "video_type"} <= set(by_provider["naver"][0].labels)
    up = {sample.labels["source"]: sample.value for sample in families["livestream_exporter_source_up"].samples}
    assert up["demo-lls"] == up["demo-naver"] == 1.0
