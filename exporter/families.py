"""Every metric family a provider may publish: name, type and HELP text, declared once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MetricKind = Literal["gauge", "counter"]


@dataclass(frozen=True, slots=True)
class MetricFamily:
    """A metric's exposition name, type and HELP text (counter names end in `_total`)."""

    name: str
    kind: MetricKind
    help: str
