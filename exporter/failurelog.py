"""Saying a source's failed polls: one line each, at warning level the first time a kind of
failure is seen (until the source recovers), at debug level after that, never a secret.

    >>> from exporter.poll import PollError
    >>> describe_failures({"101": PollError("503: busy", status=503), "102": PollError("503: busy", status=503)})
    '101, 102: 503: busy'
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from exporter.poll import ALL_UNITS, PollError, PollResult

log = logging.getLogger(__name__)

MAX_REASON_CHARS = 500
"""The longest failure reason logged or shown: a vendor's error text may be a megabyte long."""
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def fit_to_show(text: str) -> str:
    """A reason a log line and a web page can carry: a lone surrogate (a vendor's message cut
    inside an emoji) cannot be encoded and becomes U+FFFD; past MAX_REASON_CHARS it is cut."""
    text = LONE_SURROGATE.sub("\ufffd", text)
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"


def failure_kind(error: PollError) -> str:
    """What kind of failure this is, for saying it once: the code or HTTP status, not the text
    (which may carry a request id that changes every time)."""
    return error.code or (str(error.status) if error.status is not None else "error")


def describe_failures(failures: dict[str, PollError]) -> str:
    """One line for a failed poll: each distinct reason once, with up to three of its units."""
    by_reason: dict[str, list[str]] = {}
    for unit, error in sorted(failures.items()):
        reason = f"credentials rejected: {error.reason}" if error.credentials_rejected else error.reason
        by_reason.setdefault(reason, []).append(unit)
    parts = []
    for reason, units in by_reason.items():
        named = [unit for unit in units if unit != ALL_UNITS]
        if not named:
            parts.append(reason)
            continue
        more = f" and {len(named) - 3} more" if len(named) > 3 else ""
        parts.append(f"{', '.join(named[:3])}{more}: {reason}")
    return "; ".join(parts)


def internal_error(error: Exception) -> PollError:
    """A bug, or an answer our code cannot take, as a failed poll: a short reason for the one
    log line (the traceback goes to debug level)."""
    text = str(error).splitlines()[0][:200] if str(error) else ""
    return PollError(f"internal error: {type(error).__name__}{': ' + text if text else ''}")


class FailureLog:
    """One source's failure lines; remembers which kinds it has already said."""

    def __init__(self, source: str, provider: str, redact: Callable[[str], str]) -> None:
        self.source = source
        self.provider = provider
        self.redact = redact
        self.said: frozenset[str] | None = None

    def failed(self, result: PollResult, next_try: tuple[float, str] | None) -> str:
        """Log the failed poll, with when and why the next try comes when one is planned (not so
        with `--once`); returns its redacted reason (the landing page's last error). Redacted
        before it is cut, so a cut never leaves part of a secret behind."""
        reason = fit_to_show(self.redact(describe_failures(result.failures)))
        kinds = frozenset(failure_kind(error) for error in result.failures.values())
        credentials = any(error.credentials_rejected for error in result.failures.values())
        extra = {"source": self.source, "provider": self.provider, "reason": reason}
        if next_try is not None:
            extra.update(retry_in=f"{next_try[0]:.1f}s", retry_why=next_try[1])
        if kinds != self.said:
            self.said = kinds
            log.warning("credentials rejected" if credentials else "poll failed", extra=extra)
        else:
            log.debug("poll failed again", extra=extra)
        return reason

    def succeeded(self) -> None:
        if self.said is not None:
            log.info("source recovered", extra={"source": self.source, "provider": self.provider})
        self.said = None
