"""Token-bucket rate limiting, driven by a fake clock."""

from __future__ import annotations

import pytest

from federation.protocol.errors import Codes, MatrixError
from homeserver.config import RateLimit
from homeserver.handlers.ratelimit import RateLimiter, RateLimiters


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _limited(limiter: RateLimiter, key: str) -> MatrixError:
    with pytest.raises(MatrixError) as info:
        limiter.check(key)
    return info.value


def test_burst_then_429_with_retry_after() -> None:
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(per_second=2.0, burst=3), clock)
    for _ in range(3):
        limiter.check("@a:hs")
    error = _limited(limiter, "@a:hs")
    assert (error.status, error.errcode) == (429, Codes.LIMIT_EXCEEDED)
    assert error.to_json()["retry_after_ms"] == 500  # one token at 2/s


def test_refills_at_the_configured_rate_up_to_the_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(per_second=1.0, burst=2), clock)
    limiter.check("k")
    limiter.check("k")
    clock.now += 0.5
    assert _limited(limiter, "k").extra["retry_after_ms"] == 500
    clock.now += 0.5
    limiter.check("k")
    clock.now += 3600  # a long pause refills only up to the burst
    limiter.check("k")
    limiter.check("k")
    _limited(limiter, "k")


def test_keys_are_independent() -> None:
    limiter = RateLimiter(RateLimit(per_second=0.1, burst=1), FakeClock())
    limiter.check("@a:hs")
    _limited(limiter, "@a:hs")
    limiter.check("@b:hs")


def test_check_without_update_and_record() -> None:
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(per_second=1.0, burst=1), clock)
    for _ in range(5):
        limiter.check("ip", update=False)  # checking alone takes nothing
    limiter.record("ip")
    limiter.record("ip")  # an action that already happened may overdraw
    assert _limited(limiter, "ip").extra["retry_after_ms"] == 2000
    clock.now += 2
    limiter.check("ip")


def test_disabled_never_limits() -> None:
    limiter = RateLimiter(RateLimit(per_second=0.0, burst=0), FakeClock(), enabled=False)
    for _ in range(100):
        limiter.check("k")
    assert limiter.retry_after_ms("k") == 0


def test_zero_rate_stays_drained_without_dividing_by_zero() -> None:
    limiter = RateLimiter(RateLimit(per_second=0.0, burst=1), FakeClock())
    limiter.check("k")
    assert _limited(limiter, "k").extra["retry_after_ms"] > 0


def test_clock_going_backwards_does_not_add_tokens() -> None:
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(per_second=1.0, burst=1), clock)
    limiter.check("k")
    clock.now -= 100
    _limited(limiter, "k")


def test_bounded_number_of_keys() -> None:
    limiter = RateLimiter(RateLimit(per_second=0.001, burst=1), FakeClock(), max_keys=10)
    for i in range(1000):
        limiter.check(f"k{i}")
    assert len(limiter._buckets) == 10
    _limited(limiter, "k999")  # recent keys are remembered


def test_build_from_settings() -> None:
    limits = RateLimiters.build(FakeClock(), enabled=True, messages=RateLimit(1.0, 1),
                                login=RateLimit(1.0, 2), registration=RateLimit(1.0, 3))
    limits.messages.check("@a:hs")
    _limited(limits.messages, "@a:hs")
    limits.login.check("127.0.0.1")  # separate buckets per kind of action
    limits.registration.check("127.0.0.1")
