"""Rate limiting (spec: rate limiting): token buckets keyed by user or IP address.

Pure logic over an injected clock, so tests drive time. A bucket holds up to
`burst` tokens and refills at `per_second`; each action takes one token, and an
action finding too few answers 429 M_LIMIT_EXCEEDED with the wait in
`retry_after_ms` (the HTTP layer turns it into a Retry-After header).
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from federation.protocol.errors import Codes, MatrixError

from ..config import RateLimit

logger = logging.getLogger(__name__)

# With no refill configured a drained bucket stays drained; advertise an hour.
_NEVER_MS = 3_600_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets for one kind of action, bounded to `max_keys` keys (LRU)."""

    def __init__(self, rate: RateLimit, clock: Callable[[], float], *, enabled: bool = True,
                 max_keys: int = 100_000, name: str = "") -> None:
        self._per_second = rate.per_second
        self._burst = float(rate.burst)
        self._clock = clock
        self.enabled = enabled
        self._max_keys = max_keys
        self._name = name
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def _bucket(self, key: str) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self._burst, now)
            # Evicting the least recently used key forgets at most one drained
            # bucket: a bounded leak of allowance, never unbounded memory.
            while len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(self._burst, bucket.tokens + elapsed * self._per_second)
            bucket.updated = now
        return bucket

    def retry_after_ms(self, key: str, cost: float = 1.0) -> int:
        """0 if `key` may act now, else how long until it may, in milliseconds."""
        if not self.enabled:
            return 0
        missing = cost - self._bucket(key).tokens
        if missing <= 0:
            return 0
        if self._per_second <= 0:
            return _NEVER_MS
        return max(1, math.ceil(missing / self._per_second * 1000))

    def check(self, key: str, cost: float = 1.0, update: bool = True) -> None:
        """Raise 429 M_LIMIT_EXCEEDED if `key` may not act now; else take `cost`
        tokens (unless `update` is False: a check that records nothing)."""
        wait_ms = self.retry_after_ms(key, cost)
        if wait_ms:
            logger.info("rate limited %s %s for %d ms", self._name, key, wait_ms)
            raise MatrixError(429, Codes.LIMIT_EXCEEDED, "Too many requests",
                              retry_after_ms=wait_ms)
        if update:
            self.record(key, cost)

    def record(self, key: str, cost: float = 1.0) -> None:
        """Take `cost` tokens for an action that already happened (may go below 0)."""
        if self.enabled:
            self._bucket(key).tokens -= cost


@dataclass(frozen=True)
class RateLimiters:
    """The server's limiters: writes per user, logins and registrations per IP."""

    messages: RateLimiter
    login: RateLimiter
    registration: RateLimiter

    @classmethod
    def build(cls, clock: Callable[[], float], *, enabled: bool, messages: RateLimit,
              login: RateLimit, registration: RateLimit) -> RateLimiters:
        return cls(RateLimiter(messages, clock, enabled=enabled, name="messages"),
                   RateLimiter(login, clock, enabled=enabled, name="login"),
                   RateLimiter(registration, clock, enabled=enabled, name="registration"))
