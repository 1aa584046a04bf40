"""Which replica polls what: rendezvous hashing of (source, unit) over N shards.

The exporter follows kube-state-metrics' convention: `--total-shards N --shard I` (or
`--shard auto` in a StatefulSet, where pod `livestream-exporter-2` is shard 2). Every replica
scores every shard for a unit with the same hash and the highest score wins (rendezvous, or
highest-random-weight, hashing), so replicas agree on the split without talking to each other,
each owns about 1/N of the units, and going from N to N+1 shards moves only the units the new
shard wins (about 1/(N+1) of them) and none between the old shards. A source that makes a single
request is one unit, so it is assigned whole by the same hash.

Budgets that belong to one vendor account (requests per minute and per hour, credits) are split
evenly: each replica gets 1/N, so N replicas together never exceed what the account allows.
"""

from __future__ import annotations

import hashlib
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from exporter.poll import RateLimit
from exporter.settings import format_duration

if TYPE_CHECKING:
    from exporter.providers.base import Provider

AUTO = "auto"
SHARD_HINT = "must be a shard index (0, 1, 2, ...) or auto"
TOTAL_HINT = "must be a whole number of at least 1"
MAX_TOTAL_SHARDS = 100
"""More replicas than this cannot split the smallest vendor budget (LLS: 100 requests a minute
per key) into whole shares, and every replica hashes each stream once per shard."""
_TRAILING_ORDINAL = re.compile(r"-(\d+)$")


class ShardError(ValueError):
    """A sharding setting that cannot work, as one line naming where it came from."""


def parse_shard(value: Any) -> int | Literal["auto"]:
    """`auto`, or a 0-based index given as an int or its decimal text."""
    if value == AUTO:
        return AUTO
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ValueError(SHARD_HINT)


def parse_total(value: Any) -> int:
    """A shard count of at least 1, given as an int or its decimal text."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        if value > MAX_TOTAL_SHARDS:
            raise ValueError(f"must be at most {MAX_TOTAL_SHARDS}")
        return value
    raise ValueError(TOTAL_HINT)


def score(source: str, unit: str, shard: int) -> int:
    """A stable pseudo-random weight: the same on every replica, Python version and run
    (unlike `hash()`, which is salted per process)."""
    digest = hashlib.blake2b(f"{source}\0{unit}\0{shard}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(source: str, unit: str, total: int) -> int:
    """The shard that polls `unit` of `source` when there are `total` shards."""
    return max(range(total), key=lambda shard: score(source, unit, shard))


def ordinal_from_hostname(hostname: str) -> int:
    """2 for `livestream-exporter-2` (or `livestream-exporter-2.svc.example`), as a
    StatefulSet names its pods; ShardError when the name has no trailing `-<number>`."""
    short = hostname.split(".", 1)[0]
    match = _TRAILING_ORDINAL.search(short)
    if match is None:
        raise ShardError(
            f"--shard auto: host name {hostname!r} has no trailing ordinal "
            "(expected a StatefulSet pod name such as livestream-exporter-2)"
        )
    return int(match.group(1))


@dataclass(frozen=True, slots=True)
class Shard:
    """This replica's place: shard `ordinal` (0-based) of `total`."""

    ordinal: int = 0
    total: int = 1

    def __post_init__(self) -> None:
        if self.total < 1:
            raise ShardError(f"total shards {TOTAL_HINT}, got {self.total}")
        if not 0 <= self.ordinal < self.total:
            raise ShardError(f"shard {self.ordinal} is out of range for {self.total} shards (0 to {self.total - 1})")

    @property
    def sharded(self) -> bool:
        return self.total > 1

    @property
    def budget_share(self) -> float:
        """The part of each vendor account's budgets this replica may use."""
        return 1.0 / self.total

    def owns(self, source: str, unit: str) -> bool:
        return not self.sharded or owner(source, unit, self.total) == self.ordinal

    def unit_filter(self, source: str) -> Callable[[str], bool]:
        """`Provider.owns_unit` for one source; remembers each answer, so a poll of 10k
        streams hashes each stream once per process rather than N times per poll."""
        known: dict[str, bool] = {}

        def owns_unit(unit: str) -> bool:
            answer = known.get(unit)
            if answer is None:
                answer = known[unit] = self.owns(source, unit)
            return answer

        return owns_unit

    def split(self, limits: Iterable[RateLimit]) -> tuple[RateLimit, ...]:
        """This replica's part of a vendor account's rate limits: 1/N of each window, rounded
        down so N replicas together stay within it, but never below one request per window."""
        return tuple(RateLimit(max(1, limit.requests // self.total), limit.per_seconds) for limit in limits)


def requested(
    flag_shard: str | None,
    flag_total: str | None,
    config_shard: int | str,
    config_total: int,
    config_path: str,
) -> tuple[int | Literal["auto"], int]:
    """The shard and shard count asked for: flags win over the config's `global` section.

    The index is only checked against the count here when both are numbers; `auto` is
    resolved from the host name when the exporter starts (see `resolve`)."""
    total, total_origin = config_total, f"{config_path}: global: total_shards"
    if flag_total is not None:
        try:
            total, total_origin = parse_total(flag_total), "--total-shards"
        except ValueError as error:
            raise ShardError(f"--total-shards: {error}, got {flag_total!r}") from None
    shard, shard_origin = config_shard, f"{config_path}: global: shard"
    if flag_shard is not None:
        try:
            shard, shard_origin = parse_shard(flag_shard), "--shard"
        except ValueError:
            raise ShardError(f"--shard: {SHARD_HINT}, got {flag_shard!r}") from None
    if shard != AUTO and int(shard) >= total:
        raise ShardError(
            f"{shard_origin}: {shard} is out of range for {total} shards ({total_origin}; valid: 0 to {total - 1})"
        )
    return (AUTO if shard == AUTO else int(shard)), total


def resolve(shard: int | Literal["auto"], total: int, hostname: Callable[[], str] | None = None) -> Shard:
    """The running replica's Shard, taking `auto` from the host name's trailing ordinal
    (`socket.gethostname()`, which is the pod name in Kubernetes). With one shard there is
    nothing to choose, so `auto` is shard 0 whatever the host is called."""
    if shard != AUTO:
        return Shard(int(shard), total)
    if total == 1:
        return Shard()
    name = (hostname or socket.gethostname)()
    ordinal = ordinal_from_hostname(name)
    if ordinal >= total:
        raise ShardError(
            f"--shard auto: host name {name!r} gives shard {ordinal}, out of range for {total} shards "
            f"(0 to {total - 1}; scale the StatefulSet and --total-shards together)"
        )
    return Shard(ordinal, total)


def budget_summary(total: int, providers: Sequence[Provider]) -> str:
    """One line for `--check-config`: what each of `total` replicas may spend.

    Sources sharing a vendor credential share one budget; they are named, never the
    credential."""
    parts = []
    accounts: dict[tuple[str, str], list[Provider]] = {}
    for provider in providers:
        key = provider.rate_limit_key()
        if key is not None and provider.rate_limits:
            accounts.setdefault((provider.name, key), []).append(provider)
    shard = Shard(0, total)
    for (vendor, _), members in accounts.items():
        names = ", ".join(member.settings.name for member in members)
        limits = ", ".join(
            f"{limit.requests} per {format_duration(limit.per_seconds)}"
            for limit in shard.split(members[0].rate_limits)
        )
        parts.append(f"{vendor} ({names}): {limits}")
    for provider in providers:
        budget = getattr(provider.settings, "credits_budget", None)
        if budget is not None:
            parts.append(f"{provider.settings.name}: credits_budget {budget:g} -> {budget / total:g}")
    figures = "; ".join(parts) if parts else "no rate limits or credit budgets to split"
    return (
        f"sharded {total} ways: each replica polls about 1/{total} of the streams; "
        f"per-replica budgets (1/{total} of each vendor account's): {figures}"
    )
