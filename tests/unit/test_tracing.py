"""Trace context: the fast path accepts what OpenTelemetry's propagator accepts, the producer puts
it and the request id on every record, and with tracing on the spans form one trace."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator

import orjson
import pytest
from aiokafka import TopicPartition
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, get_current_span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.testclient import TestClient

from consumer_service.processor import RecordProcessor
from consumer_service.sink import StreamSink
from producer_service import create_app
from shared.runtime.settings import Settings, TracingSettings
from shared.runtime.tracing import (
    RecordSpans,
    TracingError,
    carried_headers,
    check_tracing,
    new_traceparent,
    parse_traceparent,
    start_tracing,
)
from tests.support.fakes import RecordingDeadLetters, RecordingPublisher
from tests.support.samples import TOPIC, event_body, record
from zones_service.transform import ZoneTransform

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
PARENT_SPAN_ID = 0xB7AD6B7169203331

_propagator = TraceContextTextMapPropagator()


def _propagated(traceparent: str, tracestate: str | None = None) -> dict[str, str]:
    """What OpenTelemetry's propagator passes on of these incoming headers."""
    carrier = {"traceparent": traceparent}
    if tracestate is not None:
        carrier["tracestate"] = tracestate
    injected: dict[str, str] = {}
    _propagator.inject(injected, context=_propagator.extract(carrier))
    return injected


_SAMPLES = [
    PARENT,
    PARENT.replace("-01", "-00"),
    f"  {PARENT}\t",
    PARENT.upper(),  # the format is lower-case hex
    PARENT.replace("0af7", "0AF7"),
    "00-" + "0" * 32 + "-b7ad6b7169203331-01",  # an all-zero trace id
    "00-0af7651916cd43dd8448eb211c80319c-" + "0" * 16 + "-01",  # an all-zero span id
    "ff" + PARENT[2:],  # the forbidden version
    "01" + PARENT[2:],  # a future version
    "01" + PARENT[2:] + "-what-comes-next",  # a future version may add fields
    PARENT + "-extra",  # version 00 may not
    PARENT[:-1],
    PARENT + "1",
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",
    "garbage",
    "",
    "01" + PARENT[2:] + "-" + "x" * 600,  # longer than 512
]


@pytest.mark.parametrize("traceparent", _SAMPLES)
def test_a_traceparent_is_passed_on_exactly_when_the_propagator_would(traceparent: str) -> None:
    passed_on = parse_traceparent(traceparent.encode())
    expected = _propagated(traceparent).get("traceparent")
    assert (passed_on.decode() if passed_on else None) == expected


@given(st.text(alphabet="0123456789abcdefABCDEF- \tx", max_size=70))
def test_no_string_is_judged_apart_from_the_propagator(traceparent: str) -> None:
    passed_on = parse_traceparent(traceparent.encode())
    expected = _propagated(traceparent).get("traceparent")
    assert (passed_on.decode() if passed_on else None) == expected


def test_a_new_trace_is_valid_unsampled_and_new_each_time() -> None:
    made = {new_traceparent().decode() for _ in range(1000)}
    assert len(made) == 1000
    for traceparent in made:
        assert _propagated(traceparent) == {"traceparent": traceparent}
        assert traceparent.endswith("-00")


def test_a_request_without_a_valid_traceparent_starts_a_trace_of_its_own() -> None:
    for incoming in (None, b"garbage"):
        headers = carried_headers(incoming, b"vendor=1", "request-1")
        assert [name for name, _ in headers] == ["traceparent", "x-request-id"]
        assert parse_traceparent(headers[0][1]) == headers[0][1]
        assert headers[1] == ("x-request-id", b"request-1")


def test_tracestate_is_passed_on_with_a_valid_traceparent_as_the_propagator_passes_it() -> None:
    for tracestate in ("vendor=1,other=opaque", "not a valid state", "a=" + "x" * 600):
        headers = dict(carried_headers(PARENT.encode(), tracestate.encode(), "r"))
        expected = _propagated(PARENT, tracestate)
        assert headers.get("tracestate", b"").decode() == expected.get("tracestate", "")
        assert headers["traceparent"].decode() == expected["traceparent"]


def test_each_record_of_a_request_carries_its_traceparent_and_request_id(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    response = client.post(
        "/biometrics", json=event_body(), headers={"traceparent": PARENT, "x-request-id": "r-42"}
    )
    assert response.status_code == 202
    assert publisher.headers[-1] == [("traceparent", PARENT.encode()), ("x-request-id", b"r-42")]
    response = client.post("/biometrics/batch", json=[event_body(), event_body()])
    assert response.status_code == 202
    [(traceparent_name, traceparent), request_id] = publisher.headers[-1]
    assert traceparent_name == "traceparent" and parse_traceparent(traceparent) == traceparent
    assert request_id == ("x-request-id", response.headers["x-request-id"].encode())


def test_otlp_without_its_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter", None)  # import fails
    with pytest.raises(TracingError, match=r"pip install 'biometrics-pipeline\[otlp\]'"):
        check_tracing(TracingSettings(exporter="otlp"))
    check_tracing(TracingSettings(exporter="console"))
    assert start_tracing(TracingSettings(exporter=""), "svc") is None


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def _by_name(finished: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in finished}


def test_with_tracing_on_a_request_has_a_server_and_a_send_span_and_its_records_carry_the_send(
    settings: Settings,
    publisher: RecordingPublisher,
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    app = create_app(settings, lambda _: publisher, tracer_provider=provider)
    with TestClient(app) as client:
        headers = {"traceparent": PARENT, "x-request-id": "r-7"}
        assert client.post("/biometrics", json=event_body(), headers=headers).status_code == 202
        publisher.failure = RuntimeError("boom")
        assert client.post("/biometrics", json=event_body()).status_code == 500
    first, failed = exporter.get_finished_spans()[:2], exporter.get_finished_spans()[2:]
    found = _by_name(first)
    server, send = found["POST /biometrics"], found[f"send {settings.kafka.topic}"]
    assert (server.kind, send.kind) == (SpanKind.SERVER, SpanKind.PRODUCER)
    assert server.context.trace_id == send.context.trace_id == TRACE_ID
    assert server.parent is not None and server.parent.span_id == PARENT_SPAN_ID
    assert send.parent is not None and send.parent.span_id == server.context.span_id
    assert server.attributes is not None and server.attributes["biometrics.request_id"] == "r-7"
    assert server.attributes["http.response.status_code"] == 202
    expected = f"00-{TRACE_ID:032x}-{send.context.span_id:016x}-01"
    assert publisher.headers[0] == [("traceparent", expected.encode()), ("x-request-id", b"r-7")]
    assert {span.status.status_code for span in failed} == {StatusCode.ERROR}
    assert {span.context.trace_id for span in failed} != {TRACE_ID}  # a trace of its own


async def test_with_tracing_on_the_consumer_has_a_span_per_record_under_its_producer(
    settings: Settings, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    processor = RecordProcessor(
        StreamSink(io.BytesIO()),
        RecordingDeadLetters(),
        max_record_bytes=4096,
        retries=0,
        retry_backoff_s=0,
        spans=RecordSpans(provider, TOPIC, "group"),
    )
    carried = [("traceparent", PARENT.encode()), ("x-request-id", b"r-9")]
    good, poison = orjson.dumps(event_body()), b"not json"
    await processor.process(
        TopicPartition(TOPIC, 0),
        [record(0, 1, good, headers=carried), record(0, 2, poison, headers=carried)],
    )
    await processor.flush()
    first, second = exporter.get_finished_spans()
    for span in (first, second):
        assert span.kind == SpanKind.CONSUMER and span.name == f"process {TOPIC}"
        assert span.parent is not None and span.parent.span_id == PARENT_SPAN_ID
        assert span.context.trace_id == TRACE_ID
        assert span.attributes is not None and span.attributes["biometrics.request_id"] == "r-9"
    assert first.attributes is not None and first.attributes["messaging.kafka.offset"] == 1
    assert first.status.status_code == StatusCode.UNSET
    assert second.status.status_code == StatusCode.ERROR
    assert "Invalid JSON" in (second.status.description or "")


def test_zone_events_carry_their_records_trace_context(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    carried = [("traceparent", PARENT.encode()), ("x-request-id", b"r-3"), ("other", b"x")]
    body = event_body(readings=1)
    body["heartRates"][0]["value"] = body["maxHeartRate"]  # the top zone
    source = record(0, 4, orjson.dumps(body), headers=carried)
    options = {"zones_topic": "zones", "dead_letter_topic": "dlq", "max_record_bytes": 4096}
    copied = ZoneTransform(**options)(source)
    assert (len(copied.records), copied.headers) == (1, carried[:2])
    traced = ZoneTransform(**options, spans=RecordSpans(provider, TOPIC, "zones"))(source)
    [span] = exporter.get_finished_spans()
    assert span.parent is not None and span.parent.span_id == PARENT_SPAN_ID
    expected = f"00-{TRACE_ID:032x}-{span.context.span_id:016x}-01"
    assert traced.headers == [("traceparent", expected.encode()), ("x-request-id", b"r-3")]
    assert get_current_span().get_span_context().is_valid is False  # nothing left current
