"""DeviceLimits: a rate per device on the ingestion routes, so that one device's flood never
starves the others.

Each device (with API keys on, each device under each key) has a token bucket of
http.device_burst events, refilled at http.device_rate_per_s. It is kept as one number, the
time at which the bucket is full again (GCRA, the generic cell rate algorithm): an event takes
1 / rate seconds of it, and a request is allowed while that time stays within burst / rate
seconds of now. A request takes all its events' tokens or none: a refused request costs
nothing. A device whose bucket is full again is forgotten, so memory holds only the devices
heard from within the last burst / rate seconds.

The fields of draft-ietf-httpapi-ratelimit-headers describe it to clients: RateLimit-Policy (the
bucket: q events in a window of w seconds) on every answer of the ingestion routes, RateLimit
(r events left now, t seconds until the bucket is full) once the request's device is known.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from producer_service.errors import PayloadTooLargeError, RateLimitedError, RawHeaders

_POLICY = b"ratelimit-policy"
_STATE = b"ratelimit"


class DeviceLimits:
    """The buckets of the devices heard from lately, and the headers that describe them."""

    def __init__(
        self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError(
                f"need a positive rate and a burst of 1 or more: {rate_per_s}, {burst}"
            )
        self._interval = 1 / rate_per_s
        self._tolerance = burst * self._interval  # how far ahead of now a full time may be
        self._burst = burst
        self._clock = clock
        # Each device's full time; the device updated longest ago first.
        self._full_at: OrderedDict[int, float] = OrderedDict()
        # Full buckets are looked for at most this often: a device is forgotten within a tenth
        # of its refill time (at most 0.1 s) of its bucket filling.
        self._sweep_every = min(self._tolerance / 10, 0.1)
        self._next_sweep = 0.0
        # The RateLimit field of each (tokens left, seconds until full): few distinct values.
        self._fields: dict[tuple[int, int], RawHeaders] = {}
        window = max(1, math.ceil(self._tolerance))
        self.policy: RawHeaders = ((_POLICY, f'"device";q={burst};w={window}'.encode()),)

    def __len__(self) -> int:
        """How many devices are remembered now."""
        return len(self._full_at)

    def take(self, events: Mapping[int, int]) -> RawHeaders:
        """Take each device's events (device key -> count) from its bucket, all or none, and
        return the answer's RateLimit field (RateLimit-Policy is `policy`, the same for every
        answer). RateLimitedError (429) when a bucket has too few tokens now;
        PayloadTooLargeError (413) when one request holds more of a device's events than a full
        bucket."""
        now = self._clock()
        full_at = self._full_at
        interval, burst = self._interval, self._burst
        # Comparisons, not max(): this runs for every request of POST /biometrics.
        taken: list[tuple[int, float]] = []
        latest = now  # the latest of the full times after this request
        for device, count in events.items():
            if count > burst:
                raise PayloadTooLargeError(
                    f"{count} events of one device in one request, more than http.device_burst "
                    f"({burst}) allows: send them in requests of {burst} or fewer"
                )
            before = full_at.get(device, now)
            after = (before if before > now else now) + count * interval
            if after > latest:
                latest = after
            taken.append((device, after))
        wait = latest - now - self._tolerance
        if wait > 0:
            # The fullest of the refused buckets decides when the whole request fits.
            raise self._refusal(wait, max(full_at.get(device, now) for device, _ in taken), now)
        for device, after in taken:
            full_at[device] = after
            full_at.move_to_end(device)
        if now >= self._next_sweep:
            self._forget(now)
        return self._field(latest, now)

    def _refusal(self, wait: float, full_at: float, now: float) -> RateLimitedError:
        [(_, state)] = self._field(full_at, now)
        return RateLimitedError(
            f"over the rate of its device (http.device_rate_per_s {1 / self._interval:g}, "
            f"http.device_burst {self._burst}): retry in {wait:.3f} s",
            headers={"RateLimit": state.decode(), "Retry-After": str(math.ceil(wait))},
        )

    def _field(self, full_at: float, now: float) -> RawHeaders:
        """The RateLimit field of a bucket full again at `full_at`: tokens left, seconds until
        full."""
        ahead = full_at - now if full_at > now else 0.0
        state = (int((self._tolerance - ahead) / self._interval + 1e-9), math.ceil(ahead))
        field = self._fields.get(state)
        if field is None:
            if len(self._fields) > 100_000:  # a huge burst and a slow rate: many values
                self._fields.clear()
            remaining, seconds = state
            field = ((_STATE, f'"device";r={max(remaining, 0)};t={seconds}'.encode()),)
            self._fields[state] = field
        return field

    def _forget(self, now: float) -> None:
        """Drop the devices whose bucket is full again, oldest update first. The first one still
        filling was updated within the tolerance, and so was every later one."""
        self._next_sweep = now + self._sweep_every
        full_at = self._full_at
        while full_at:
            device, at = next(iter(full_at.items()))
            if at > now:
                return
            del full_at[device]
