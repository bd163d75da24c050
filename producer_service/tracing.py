"""RequestSpans: with tracing on, a SERVER span for each ingestion request and a PRODUCER span
for its records, whose context (shared.runtime.tracing) goes into every record's headers."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from opentelemetry.trace import Span, SpanKind, Status, StatusCode, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.kafka.headers import REQUEST_ID
from shared.runtime.tracing import messaging_attributes

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider


class RequestSpan:
    """One request's spans: the headers of its records, and its answer once known."""

    def __init__(self, server: Span, send: Span, record_headers: list[tuple[str, bytes]]) -> None:
        self._server = server
        self._send = send
        self.record_headers = record_headers

    def answered(self, status: int) -> None:
        """Note the HTTP status; a 5xx marks both spans as failed."""
        self._server.set_attribute("http.response.status_code", status)
        if status >= 500:
            for span in (self._send, self._server):
                span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))


class RequestSpans:
    """Spans of the ingestion routes, children of the request's `traceparent` when valid."""

    def __init__(self, provider: TracerProvider, topic: str) -> None:
        self._tracer = provider.get_tracer(__name__)
        self._propagator = TraceContextTextMapPropagator()
        self._send_name = f"send {topic}"
        self._send_attributes = messaging_attributes("send", topic)

    @contextmanager
    def request(
        self, method: str, path: str, headers: Mapping[bytes, bytes], request_id: str
    ) -> Iterator[RequestSpan]:
        """Spans for the request while the block runs: the server's, and the records' send."""
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in headers.items()
            if name in (b"traceparent", b"tracestate")
        }
        parent = self._propagator.extract(carrier)
        attributes = {
            "http.request.method": method,
            "url.path": path,
            "biometrics.request_id": request_id,
        }
        with (
            self._tracer.start_as_current_span(
                f"{method} {path}", context=parent, kind=SpanKind.SERVER, attributes=attributes
            ) as server,
            self._tracer.start_as_current_span(
                self._send_name, kind=SpanKind.PRODUCER, attributes=self._send_attributes
            ) as send,
        ):
            injected: dict[str, str] = {}
            self._propagator.inject(injected, context=set_span_in_context(send))
            record_headers = [(name, value.encode()) for name, value in injected.items()]
            record_headers.append((REQUEST_ID, request_id.encode()))
            yield RequestSpan(server, send, record_headers)
