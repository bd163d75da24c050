"""The record headers the services write and read: their names, and reading one.

Trace context: W3C ``traceparent`` and ``tracestate`` and the producer's ``x-request-id``, carried
from the HTTP request to every record derived from it (shared.runtime.tracing).

The idempotency key: every record of a request that came with an ``Idempotency-Key`` gets the
header ``idempotency-key``: the key itself for ``POST /biometrics``, ``<key>#<n>`` for the n-th
event (from 0) of ``POST /biometrics/batch``. Keys never hold ``#``, so the two never collide.
Two records with the same value are copies of one event: a retry that was produced again.

A dead letter's: why it was set aside (``dlq.error``), where it came from
(``dlq.original.topic``, ``dlq.original.partition``, ``dlq.original.offset``), and
``dlq.value-omitted`` when its value was too large to keep (shared.kafka.records).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = [
    "DEAD_LETTER_HEADERS",
    "DLQ_ERROR",
    "DLQ_ORIGINAL_OFFSET",
    "DLQ_ORIGINAL_PARTITION",
    "DLQ_ORIGINAL_TOPIC",
    "DLQ_VALUE_OMITTED",
    "IDEMPOTENCY_KEY",
    "REQUEST_ID",
    "TRACEPARENT",
    "TRACESTATE",
    "TRACE_HEADERS",
    "RecordHeaders",
    "event_keys",
    "header_text",
    "header_value",
]

# A record's headers as aiokafka gives and takes them.
RecordHeaders = Sequence[tuple[str, bytes]]

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
REQUEST_ID = "x-request-id"
TRACE_HEADERS = frozenset((TRACEPARENT, TRACESTATE, REQUEST_ID))

IDEMPOTENCY_KEY = "idempotency-key"

DLQ_ERROR = "dlq.error"
DLQ_ORIGINAL_TOPIC = "dlq.original.topic"
DLQ_ORIGINAL_PARTITION = "dlq.original.partition"
DLQ_ORIGINAL_OFFSET = "dlq.original.offset"
DLQ_VALUE_OMITTED = "dlq.value-omitted"
DEAD_LETTER_HEADERS = (
    DLQ_ERROR,
    DLQ_ORIGINAL_TOPIC,
    DLQ_ORIGINAL_PARTITION,
    DLQ_ORIGINAL_OFFSET,
    DLQ_VALUE_OMITTED,
)


def event_keys(key: bytes, count: int, batch: bool) -> list[bytes]:
    """The idempotency-key header value of each of a request's `count` events."""
    if not batch:
        return [key]
    return [b"%s#%d" % (key, number) for number in range(count)]


def header_value(headers: Iterable[tuple[str, bytes]], name: str) -> bytes | None:
    """The last value of the named header, or None."""
    found = None
    for key, value in headers:
        if key == name:
            found = value
    return found


def header_text(headers: Iterable[tuple[str, bytes]], name: str) -> str | None:
    """The last value of the named header as text (a header may hold any bytes), or None."""
    found = header_value(headers, name)
    return None if found is None else found.decode(errors="replace")
