"""A source's requests and polls, recorded in the exporter's own metrics by the caller.

As in blackbox_exporter, where the handler and not each prober owns `probe_success` and the
durations: providers and the fetcher only report what happened (a request's code, a wait, a
poll's result) and this one place writes it to the metrics, so no provider touches Prometheus.
"""

from __future__ import annotations

from exporter.poll import PollResult
from exporter.selfmetrics import ExporterMetrics
from exporter.status import SourceStatus


class SourceBookkeeping:
    """The fetcher's `RequestObserver` for one source, and the recorder of its polls."""

    def __init__(self, metrics: ExporterMetrics, status: SourceStatus) -> None:
        self.metrics = metrics
        self.status = status
        self.labels = (status.name, status.provider)

    def opened(self, spends_credits: bool) -> None:
        """Every series of the source at 0, so rates and alerts work before the first failure."""
        self.metrics.add_source(*self.labels, self.status.interval, self.status.is_rate_limited)
        if spends_credits:
            self.metrics.credits_spent.labels(*self.labels)

    def removed(self) -> None:
        self.metrics.remove_source(*self.labels)

    def request_done(self, endpoint: str, code: str, seconds: float) -> None:
        self.metrics.requests.labels(*self.labels, endpoint, code).inc()
        self.metrics.request_duration.labels(*self.labels).observe(seconds)

    def rate_limited(self) -> None:
        self.metrics.rate_limited.labels(*self.labels).inc()

    def waiting(self, seconds: float) -> None:
        self.status.waiting(seconds)

    def skipped(self, count: int) -> None:
        self.metrics.polls_skipped.labels(*self.labels).inc(count)

    def units(self, count: int) -> None:
        """How many units of the source this replica polls (a provider's units may change)."""
        self.metrics.owned_units.labels(*self.labels).set(count)

    def poll_done(self, result: PollResult, at: float) -> None:
        labels = self.labels
        if result.rejected_points:
            self.metrics.rejected_points.labels(*labels).inc(result.rejected_points)
        if result.credits_spent:
            self.metrics.credits_spent.labels(*labels).inc(result.credits_spent)
        if result.credits_remaining is not None:
            self.metrics.credits_remaining.labels(*labels).set(result.credits_remaining)
        if result.newest_timestamp is not None:
            self.metrics.newest_sample.labels(*labels).set(result.newest_timestamp)
        self.metrics.source_up.labels(*labels).set(1 if result.ok else 0)
        if result.ok:
            self.metrics.last_success.labels(*labels).set(at)
