"""livestream-exporter: live-stream audience figures from streaming vendors, for Prometheus."""

from __future__ import annotations

__version__ = "0.1.0"
