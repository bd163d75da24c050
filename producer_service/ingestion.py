"""Ingestion: POST /biometrics and POST /biometrics/batch as plain ASGI, in front of Starlette.

The two routes that carry the load skip Starlette's routing, Request objects, exception
middleware and response classes (a no-op Starlette endpoint did 17-19k requests/s on this
machine, a plain ASGI one 27-28k). Each request is read, checked, validated once, published and
answered in one coroutine, with the same request id, API-key check, request count, access-log
line and error shape as every other route. Everything else goes on to the Starlette app.

Each record carries the request's trace context and id in its headers (shared.tracing): passed on
or started here, or, with tracing on, those of the request's spans (producer_service.tracing).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import msgspec
from starlette.types import ASGIApp, Receive, Scope, Send

from producer_service.auth import ApiKeys
from producer_service.deadlines import BodyDeadlines, is_body_timeout
from producer_service.errors import (
    ApiError,
    MethodNotAllowedError,
    PayloadTooLargeError,
    RequestTimeoutError,
    UnsupportedMediaError,
    error_body,
    from_invalid_event,
    from_overload,
    from_publish_error,
    unexpected,
)
from producer_service.metrics import ProducerMetrics
from producer_service.middleware import RequestRecorder
from producer_service.publisher import Delivery, OverloadedError, Publisher, PublishError
from producer_service.tracing import RequestSpans
from shared.schema import InvalidEvent, parse_event, parse_events
from shared.settings import HttpSettings
from shared.tracing import RecordHeaders, carried_headers

EVENT_PATH = "/biometrics"
BATCH_PATH = "/biometrics/batch"
INGESTION_PATHS = (EVENT_PATH, BATCH_PATH)

_log = logging.getLogger(__name__)

_JSON = b"application/json"
_encode = msgspec.json.Encoder().encode
_CLIENT_GONE = 499  # logged and counted only: nobody is left to answer

Handler = Callable[[bytes, Publisher, RecordHeaders], Awaitable[bytes]]


class _ClientGone(Exception):
    """The client disconnected before its body arrived."""


class Ingestion:
    """The ASGI app the server runs: ingestion routes here, every other request to `app`."""

    def __init__(
        self,
        app: ASGIApp,
        http: HttpSettings,
        metrics: ProducerMetrics,
        recorder: RequestRecorder,
        spans: RequestSpans | None = None,
    ) -> None:
        self._app = app
        self._spans = spans
        self._metrics = metrics
        self._recorder = recorder
        self._max_body = http.max_body_bytes
        self._max_events = http.max_batch_events
        self._deadlines = BodyDeadlines(http.body_timeout_s)
        self._keys = ApiKeys(http.api_keys) if http.require_api_key else None
        self._handlers: dict[str, Handler] = {EVENT_PATH: self._event, BATCH_PATH: self._batch}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self._handlers.get(scope["path"]) if scope["type"] == "http" else None
        if handler is None:
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        # Header names arrive lower-cased (ASGI); a repeated header keeps its last value.
        headers: dict[bytes, bytes] = dict(scope["headers"])
        request_id = self._recorder.request_id(headers.get(b"x-request-id"))
        spans = self._spans
        if spans is None:
            trace = carried_headers(
                headers.get(b"traceparent"), headers.get(b"tracestate"), request_id
            )
            status, body, extra = await self._outcome(handler, scope, receive, headers, trace)
        else:
            with spans.request(scope["method"], scope["path"], headers, request_id) as span:
                status, body, extra = await self._outcome(
                    handler, scope, receive, headers, span.record_headers
                )
                span.answered(status)
        if status != _CLIENT_GONE:
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", _JSON),
                        (b"content-length", str(len(body)).encode()),
                        (b"x-request-id", request_id.encode()),
                        *extra,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
        self._recorder.finished(scope["method"], scope["path"], status, started, request_id)

    async def _outcome(
        self,
        handler: Handler,
        scope: Scope,
        receive: Receive,
        headers: dict[bytes, bytes],
        trace: RecordHeaders,
    ) -> tuple[int, bytes, tuple[tuple[bytes, bytes], ...]]:
        """The status, body and extra headers of the answer."""
        try:
            return 202, await self._answer(handler, scope, receive, headers, trace), ()
        except _ClientGone:
            return _CLIENT_GONE, b"", ()
        except ApiError as error:
            return self._refused(error)

    async def _answer(
        self,
        handler: Handler,
        scope: Scope,
        receive: Receive,
        headers: dict[bytes, bytes],
        trace: RecordHeaders,
    ) -> bytes:
        """The 202 body, or an ApiError saying why not."""
        if scope["method"] != "POST":
            raise MethodNotAllowedError()
        if self._keys is not None:
            refusal = self._keys.refusal(headers.get(b"authorization", b"").decode("latin-1"))
            if refusal is not None:
                raise refusal
        media_type = headers.get(b"content-type", b"").partition(b";")[0].strip().lower()
        if media_type != _JSON:
            shown = media_type.decode("latin-1") or "none"
            raise UnsupportedMediaError(f"expected Content-Type application/json, got {shown}")
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self._max_body:
            raise PayloadTooLargeError(_too_large(self._max_body))
        body = await self._read_body(receive)
        publisher: Publisher = scope["state"]["publisher"]
        try:
            return await handler(body, publisher, trace)
        except InvalidEvent as error:
            raise from_invalid_event(error) from None
        except PublishError as error:
            raise from_publish_error(error) from error
        except OverloadedError as error:
            raise from_overload(error) from None
        except Exception as error:
            raise unexpected(error, scope["path"]) from error

    async def _event(self, body: bytes, publisher: Publisher, trace: RecordHeaders) -> bytes:
        [delivery] = await publisher.publish((parse_event(body),), trace)
        return _encode(delivery)

    async def _batch(self, body: bytes, publisher: Publisher, trace: RecordHeaders) -> bytes:
        deliveries = await publisher.publish(parse_events(body, self._max_events), trace)
        return _encode(_BatchAccepted(deliveries))

    async def _read_body(self, receive: Receive) -> bytes:
        # Content-Length may be absent (chunked) or wrong: count what really arrives.
        deadlines = self._deadlines
        task = deadlines.start()
        try:
            message = await receive()
            chunks: list[bytes] = [message.get("body", b"")]
            size = len(chunks[0])
            while size <= self._max_body and message.get("more_body", False):
                message = await receive()
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
        except asyncio.CancelledError as error:
            if not is_body_timeout(error):
                raise
            task.uncancel()
            timeout = deadlines.timeout_s
            raise RequestTimeoutError(f"request body took longer than {timeout:g} s") from None
        finally:
            deadlines.done(task)
        if message["type"] == "http.disconnect":
            raise _ClientGone()
        if size > self._max_body:
            raise PayloadTooLargeError(_too_large(self._max_body))
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _refused(self, error: ApiError) -> tuple[int, bytes, tuple[tuple[bytes, bytes], ...]]:
        self._metrics.errors[error.code] += 1
        extra = tuple(
            (name.lower().encode(), value.encode()) for name, value in error.headers.items()
        )
        return error.status, error_body(error), extra


class _BatchAccepted(msgspec.Struct, gc=False):
    records: list[Delivery]


def _too_large(limit: int) -> str:
    return f"request body is larger than {limit} bytes (http.max_body_bytes)"
