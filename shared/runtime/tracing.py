"""Trace context across Kafka: W3C `traceparent` (and `tracestate`) plus the producer's request
id, carried in each record's headers from the HTTP request to every record derived from it.

Without an exporter (tracing.exporter = "", the default) no span is made: the producer passes a
valid incoming `traceparent` on as OpenTelemetry's API does without an SDK, or starts a trace of
its own (not sampled, as nothing records it), and the consumers copy the headers. That path is a
regular expression and a format, far cheaper per request than OpenTelemetry's propagator and a
non-recording SDK span. `parse_traceparent` accepts exactly what
`TraceContextTextMapPropagator.extract` does (tests/unit/test_tracing.py holds it to that).

With an exporter, `start_tracing` makes an SDK TracerProvider whose spans are exported, and the
services' spans come from it: their headers are then written by OpenTelemetry's propagator.
"""

from __future__ import annotations

import importlib
import importlib.util
import random
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from aiokafka import ConsumerRecord
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import (
    Span,
    SpanKind,
    Status,
    StatusCode,
    TraceState,
    set_span_in_context,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.kafka.headers import (
    REQUEST_ID,
    TRACE_HEADERS,
    TRACEPARENT,
    TRACESTATE,
    header_text,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from shared.runtime.settings import TracingSettings

__all__ = [
    "RecordSpans",
    "TracingError",
    "carried_headers",
    "check_tracing",
    "end_span",
    "exporting_spans",
    "messaging_attributes",
    "new_traceparent",
    "parse_traceparent",
    "start_tracing",
    "trace_headers",
]

# The propagator's format and limits (opentelemetry/trace/propagation/tracecontext.py).
_TRACEPARENT_FORMAT = re.compile(
    rb"^[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:(-.*)|[ \t]*)$"
)
_TRACEPARENT_MAX_LENGTH = 512
_TRACESTATE_MAX_LENGTH = 512
_ZERO_TRACE_ID = b"0" * 32
_ZERO_SPAN_ID = b"0" * 16
_OTLP_MODULE = "opentelemetry.exporter.otlp.proto.http.trace_exporter"
_OTLP_MISSING = (
    'tracing.exporter = "otlp" needs opentelemetry-exporter-otlp-proto-http: '
    "pip install 'biometrics-pipeline[otlp]'"
)


class TracingError(Exception):
    """tracing.exporter names an exporter whose package is not installed."""


def parse_traceparent(value: bytes) -> bytes | None:
    """The `traceparent` to pass on (version 00, no padding), or None when it is not valid."""
    if len(value) > _TRACEPARENT_MAX_LENGTH:
        return None
    match = _TRACEPARENT_FORMAT.match(value)
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if trace_id == _ZERO_TRACE_ID or span_id == _ZERO_SPAN_ID or version == b"ff":
        return None
    if version == b"00" and rest:
        return None
    return b"00-%b-%b-%b" % (trace_id, span_id, flags)


def new_traceparent() -> bytes:
    """A new trace's `traceparent`, not sampled: nothing records a span of it."""
    trace_id = span_id = 0
    while not trace_id or not span_id:  # all zeros is not a valid id
        ids = random.getrandbits(192)
        trace_id, span_id = ids >> 64, ids & 0xFFFFFFFFFFFFFFFF
    return b"00-%032x-%016x-00" % (trace_id, span_id)


def carried_headers(
    traceparent: bytes | None, tracestate: bytes | None, request_id: str
) -> list[tuple[str, bytes]]:
    """The trace headers of a request's records when no span is made for it."""
    passed_on = parse_traceparent(traceparent) if traceparent else None
    if passed_on is None:
        return [(TRACEPARENT, new_traceparent()), (REQUEST_ID, request_id.encode())]
    headers = [(TRACEPARENT, passed_on)]
    if tracestate and len(tracestate) <= _TRACESTATE_MAX_LENGTH:
        # Rare, so the propagator's own parser: it drops a tracestate that is not valid.
        state = TraceState.from_header([tracestate.decode("latin-1")]).to_header()
        if state:
            headers.append((TRACESTATE, state.encode()))
    headers.append((REQUEST_ID, request_id.encode()))
    return headers


def trace_headers(headers: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """A consumed record's trace headers, to copy onto what is derived from it."""
    return [(name, value) for name, value in headers if name in TRACE_HEADERS]


def check_tracing(settings: TracingSettings) -> None:
    """Raise TracingError when tracing.exporter's package is not installed."""
    if settings.exporter == "otlp":
        _require_otlp()


def _require_otlp() -> None:
    try:
        found = importlib.util.find_spec(_OTLP_MODULE) is not None
    except ModuleNotFoundError:  # a parent package is missing
        found = False
    if not found:
        raise TracingError(_OTLP_MISSING)


def start_tracing(
    settings: TracingSettings, service_name: str, provider: TracerProvider | None = None
) -> TracerProvider | None:
    """The TracerProvider that exports the service's spans, or None with tracing.exporter off.

    `provider` (tests: one with an in-memory exporter) is used as given. The sampler follows
    OTEL_TRACES_SAMPLER (default: parent-based, always on), and the OTLP exporter its own
    OTEL_EXPORTER_OTLP_* variables; OTEL_SERVICE_NAME overrides the service's name.
    """
    if provider is not None or not settings.exporter:
        return provider
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    provider.add_span_processor(BatchSpanProcessor(_exporter(settings.exporter)))
    return provider


@contextmanager
def exporting_spans(
    settings: TracingSettings, service_name: str, provider: TracerProvider | None = None
) -> Iterator[TracerProvider | None]:
    """start_tracing for the block; a provider it made is shut down (its spans flushed) after."""
    started = start_tracing(settings, service_name, provider)
    try:
        yield started
    finally:
        if started is not None and started is not provider:
            started.shutdown()


def _exporter(name: str) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        # stderr: stdout carries the services' JSON lines, which a span must not interleave.
        return ConsoleSpanExporter(out=sys.stderr)
    _require_otlp()
    return importlib.import_module(_OTLP_MODULE).OTLPSpanExporter()


class RecordSpans:
    """With tracing on: a CONSUMER span for each record consumed, a child of the trace context in
    the record's headers, and the headers that carry that span on to records derived from it."""

    def __init__(self, provider: TracerProvider, topic: str, group_id: str) -> None:
        self._tracer = provider.get_tracer(__name__)
        self._propagator = TraceContextTextMapPropagator()
        self._name = f"process {topic}"
        self._attributes = {
            **messaging_attributes("process", topic),
            "messaging.consumer.group.name": group_id,
        }

    def start(self, record: ConsumerRecord[Any, Any]) -> Span:
        """Start the record's span (end it with Span.end, or record_outcome)."""
        parent = self._propagator.extract(record.headers, getter=_RECORD_HEADERS)
        span = self._tracer.start_span(
            self._name, context=parent, kind=SpanKind.CONSUMER, attributes=self._attributes
        )
        span.set_attribute("messaging.destination.partition.id", str(record.partition))
        span.set_attribute("messaging.kafka.offset", record.offset)
        if (request_id := header_text(record.headers, REQUEST_ID)) is not None:
            span.set_attribute("biometrics.request_id", request_id)
        return span

    def carried_headers(
        self, span: Span, record: ConsumerRecord[Any, Any]
    ) -> list[tuple[str, bytes]]:
        """The trace headers of a record derived from `record` while `span` handles it."""
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=set_span_in_context(span))
        headers = [(name, value.encode()) for name, value in carrier.items()]
        headers += [(name, value) for name, value in record.headers if name == REQUEST_ID]
        return headers


def messaging_attributes(operation: str, topic: str) -> dict[str, str]:
    """OpenTelemetry's messaging attributes of a span that sends to `topic` or processes from it."""
    return {
        "messaging.system": "kafka",
        "messaging.operation.type": operation,
        "messaging.destination.name": topic,
    }


def end_span(span: Span, failure: str | None = None) -> None:
    """End a span, marked as an error with the reason when there is one."""
    if failure is not None:
        span.set_status(Status(StatusCode.ERROR, failure))
    span.end()


class _RecordHeaderGetter(Getter[Sequence[tuple[str, bytes]]]):
    """Reads a Kafka record's headers for OpenTelemetry's propagator."""

    def get(self, carrier: Sequence[tuple[str, bytes]], key: str) -> list[str] | None:
        values = [value.decode("latin-1") for name, value in carrier if name == key]
        return values or None

    def keys(self, carrier: Sequence[tuple[str, bytes]]) -> list[str]:
        return [name for name, _ in carrier]


_RECORD_HEADERS = _RecordHeaderGetter()
