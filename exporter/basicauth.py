"""Basic auth against bcrypt hashes that wrong passwords cannot turn into a denial of service.

bcrypt is slow on purpose (tens of ms per check at cost 10), so a few hundred clients sending
wrong passwords would otherwise queue every scrape behind their checks. Here:

- credentials that were once found good are remembered (keyed by a keyed BLAKE2b hash of user
  and password, never the password itself) and answered at once, never waiting behind bcrypt;
- bcrypt runs off the event loop in a small pool, with a bounded number of checks waiting;
- each client address may have a few checks running and spend a burst of failed attempts, then
  one a second: beyond that it is answered 429 without any bcrypt work, after a second's wait, so
  one noisy client cannot use up the pool that everyone else's first login needs, nor the event
  loop;
- a header that cannot be a valid login (not base64, not UTF-8, a password over bcrypt's 72
  bytes) is refused without bcrypt: 401, never an internal error.

Behind a proxy every client has the proxy's address; known-good logins still pass at once.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import hashlib
import os
import secrets
import string
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import bcrypt

MAX_PASSWORD_BYTES = 72
"""bcrypt reads no further: a longer password cannot be the one a hash was made from."""
BCRYPT_WORKERS = 2
MAX_CHECKS = 32
"""bcrypt checks running or waiting, over all clients: at most about a second of queue."""
CHECKS_PER_CLIENT = 2
FAILURE_BURST = 10
FAILURE_REFILL_SECONDS = 1.0
THROTTLED_ANSWER_DELAY = 1.0
"""Seconds a throttled client waits for its 429: a client that retries at once then sends one
request a second per connection instead of thousands, which the event loop would spend on
parsing them while scrapes wait."""
REMEMBERED = 1024
CLIENTS_TRACKED = 4096
_BCRYPT_ALPHABET = "./" + string.ascii_letters + string.digits


class Verdict(enum.Enum):
    GRANTED = "granted"
    DENIED = "denied"
    THROTTLED = "throttled"


def parse_basic(header: str) -> tuple[str, bytes] | None:
    """(user, password bytes) from an `Authorization: Basic ...` value, or None."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        text = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except ValueError:
        return None
    user, sep, password = text.partition(":")
    return (user, password.encode()) if sep else None


def decoy_hash(cost: int) -> bytes:
    """A well-formed hash no password matches: checked for unknown users, so that they take as
    long as known ones and the answer time does not tell which users exist."""
    return bcrypt.gensalt(cost) + "".join(secrets.choice(_BCRYPT_ALPHABET) for _ in range(31)).encode()


@dataclass
class _ClientBudget:
    tokens: float = float(FAILURE_BURST)
    updated: float = field(default_factory=time.monotonic)
    running: int = 0

    def try_spend(self) -> bool:
        now = time.monotonic()
        self.tokens = min(float(FAILURE_BURST), self.tokens + (now - self.updated) / FAILURE_REFILL_SECONDS)
        self.updated = now
        if self.tokens < 1 or self.running >= CHECKS_PER_CLIENT:
            return False
        self.tokens -= 1
        return True


class _Remembered:
    """A bounded set of keyed hashes, least recently seen dropped first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._keys: OrderedDict[bytes, None] = OrderedDict()

    def __contains__(self, key: bytes) -> bool:
        if key in self._keys:
            self._keys.move_to_end(key)
            return True
        return False

    def add(self, key: bytes) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        if len(self._keys) > self.size:
            self._keys.popitem(last=False)

    def clear(self) -> None:
        self._keys.clear()


class BasicAuth:
    """Checks logins against `users` (user to bcrypt hash)."""

    def __init__(self, users: dict[str, str]) -> None:
        self._pool = ThreadPoolExecutor(max_workers=BCRYPT_WORKERS, thread_name_prefix="bcrypt")
        self._secret = os.urandom(32)
        self._good = _Remembered(REMEMBERED)
        self._bad = _Remembered(REMEMBERED)
        self._clients: OrderedDict[str, _ClientBudget] = OrderedDict()
        self._checks = 0
        self.users: dict[str, bytes] = {}
        self._decoy = b""
        self.update(users)

    def update(self, users: dict[str, str]) -> None:
        """New users (a reloaded web config): what was remembered is forgotten."""
        self.users = {user: hashed.encode() for user, hashed in users.items()}
        cost = max((int(hashed[4:6]) for hashed in self.users.values()), default=10)
        self._decoy = decoy_hash(cost)
        self._good.clear()
        self._bad.clear()

    def _key(self, user: str, password: bytes) -> bytes:
        return hashlib.blake2b(user.encode() + b"\0" + password, key=self._secret, digest_size=32).digest()

    def _budget(self, client: str) -> _ClientBudget:
        budget = self._clients.get(client)
        if budget is None:
            budget = self._clients[client] = _ClientBudget()
            if len(self._clients) > CLIENTS_TRACKED:
                self._clients.popitem(last=False)
        self._clients.move_to_end(client)
        return budget

    async def check(self, header: str, client: str) -> Verdict:
        """GRANTED for a valid login; DENIED for a wrong one; THROTTLED when `client` (an
        address) has spent its attempts or too many checks are waiting."""
        login = parse_basic(header)
        if login is None or len(login[1]) > MAX_PASSWORD_BYTES:
            return Verdict.DENIED
        user, password = login
        key = self._key(user, password)
        if key in self._good:
            return Verdict.GRANTED
        if key in self._bad:
            return Verdict.DENIED
        budget = self._budget(client)
        if self._checks >= MAX_CHECKS or not budget.try_spend():
            return Verdict.THROTTLED
        hashed = self.users.get(user)
        self._checks += 1
        budget.running += 1
        try:
            loop = asyncio.get_running_loop()
            matched = await loop.run_in_executor(self._pool, bcrypt.checkpw, password, hashed or self._decoy)
        finally:
            self._checks -= 1
            budget.running -= 1
        current = self.users.get(user) == hashed
        if matched and hashed is not None:
            if current:
                self._good.add(key)
            budget.tokens = min(float(FAILURE_BURST), budget.tokens + 1)
            return Verdict.GRANTED
        if current:
            self._bad.add(key)
        return Verdict.DENIED

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
