"""DeviceLimits: each device's token bucket, its refusals, its headers, and what it remembers."""

from __future__ import annotations

import tracemalloc

import pytest

from producer_service.errors import PayloadTooLargeError, RateLimitedError
from producer_service.rate_limit import DeviceLimits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _limits(rate: float = 2, burst: int = 4) -> tuple[DeviceLimits, Clock]:
    clock = Clock()
    return DeviceLimits(rate, burst, clock), clock


def test_a_device_gets_its_burst_at_once_then_its_rate() -> None:
    limits, clock = _limits(rate=2, burst=4)
    answers = [limits.take({1: 1}) for _ in range(4)]
    assert [value for ((_, value),) in answers] == [
        b'"device";r=3;t=1',
        b'"device";r=2;t=1',
        b'"device";r=1;t=2',
        b'"device";r=0;t=2',
    ]
    with pytest.raises(RateLimitedError) as refused:
        limits.take({1: 1})
    assert refused.value.status == 429
    assert refused.value.headers == {"RateLimit": '"device";r=0;t=2', "Retry-After": "1"}
    assert "http.device_rate_per_s 2" in refused.value.message
    clock.now += 0.5  # one token back
    limits.take({1: 1})
    with pytest.raises(RateLimitedError):
        limits.take({1: 1})


def test_one_device_over_its_rate_does_not_touch_another() -> None:
    limits, _ = _limits(rate=1, burst=2)
    limits.take({1: 2})
    with pytest.raises(RateLimitedError):
        limits.take({1: 1})
    assert limits.take({2: 2}) == ((b"ratelimit", b'"device";r=0;t=2'),)


def test_a_request_takes_every_devices_events_or_none() -> None:
    limits, _ = _limits(rate=1, burst=3)
    limits.take({1: 3})
    with pytest.raises(RateLimitedError) as refused:
        limits.take({2: 2, 1: 1})
    assert refused.value.headers["Retry-After"] == "1"
    # Device 2 was not charged for the refused request: its whole burst is left.
    limits.take({2: 3})


def test_retry_after_is_the_time_until_the_whole_request_fits() -> None:
    limits, clock = _limits(rate=0.5, burst=4)
    limits.take({1: 4})
    with pytest.raises(RateLimitedError) as refused:
        limits.take({1: 3})
    assert refused.value.headers["Retry-After"] == "6"  # 3 tokens at one per 2 s
    clock.now += 5.9
    with pytest.raises(RateLimitedError):
        limits.take({1: 3})
    clock.now += 0.1
    limits.take({1: 3})


def test_more_events_of_one_device_than_a_full_bucket_is_413_not_a_retry() -> None:
    limits, _ = _limits(rate=1, burst=3)
    with pytest.raises(PayloadTooLargeError) as refused:
        limits.take({1: 4})
    assert "http.device_burst (3)" in refused.value.message
    assert "Retry-After" not in refused.value.headers


def test_the_policy_names_the_bucket() -> None:
    limits, _ = _limits(rate=2, burst=20)
    assert limits.policy == ((b"ratelimit-policy", b'"device";q=20;w=10'),)
    fast, _ = _limits(rate=1000, burst=5)
    assert fast.policy == ((b"ratelimit-policy", b'"device";q=5;w=1'),)


@pytest.mark.parametrize(("rate", "burst"), [(0, 5), (-1, 5), (1, 0)])
def test_a_bucket_that_could_never_fill_is_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="positive rate"):
        DeviceLimits(rate, burst)


def test_devices_whose_bucket_is_full_again_are_forgotten() -> None:
    limits, clock = _limits(rate=10, burst=10)  # a token in 0.1 s, a whole bucket in 1 s
    for device in range(1000):
        limits.take({device: 1})  # full again at +0.1 s
    assert len(limits) == 1000
    clock.now += 0.05
    limits.take({5000: 10})  # full again at +1.05 s
    assert len(limits) == 1001
    clock.now += 0.1
    limits.take({6000: 1})  # full again at +0.25 s
    assert len(limits) == 2
    clock.now += 0.95
    limits.take({7000: 1})
    assert len(limits) == 1


def test_memory_stays_bounded_however_many_devices_there_are() -> None:
    """50,000 devices, each heard from once, a thousand a second: only those of the last second
    (and of the tenth of a second between two looks for full buckets) are remembered."""
    limits, clock = _limits(rate=1, burst=1)
    tracemalloc.start()
    try:
        for device in range(50_000):
            clock.now += 0.001
            limits.take({device << 64 | device: 1})
        remembered = len(limits)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert remembered <= 1101
    assert held < 1101 * 400, held
