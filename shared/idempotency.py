"""The idempotency key a record carries: what identifies a device's event across its retries.

The producer gives every record of a request that came with an ``Idempotency-Key`` the header
``idempotency-key``: the key itself for ``POST /biometrics``, ``<key>#<n>`` for the n-th event
(from 0) of ``POST /biometrics/batch``. Keys never hold ``#``, so the two never collide. Two
records with the same value are copies of one event: a retry that was produced again.
"""

from __future__ import annotations

IDEMPOTENCY_KEY = "idempotency-key"


def event_keys(key: bytes, count: int, batch: bool) -> list[bytes]:
    """The header value of each of a request's `count` events."""
    if not batch:
        return [key]
    return [b"%s#%d" % (key, number) for number in range(count)]
