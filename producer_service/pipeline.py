"""RequestPipeline: the ASGI app the server runs, the one path of every request.

For each request it takes or makes the request id, dispatches, answers every error in the one
JSON shape (an unexpected one as a 500, logged once), and counts and logs the answer. The two
ingestion paths go to Ingestion's plain-ASGI handlers, whose records carry the request's trace
context and id (shared.runtime.tracing, or with tracing on, the request's spans); every other path
goes to a Starlette Router, whose HTTPExceptions (404, 405) the pipeline answers too.
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from producer_service.access_log import AccessLog
from producer_service.errors import RawHeaders, as_api_error, error_body
from producer_service.ingestion import ClientGone, Ingestion
from producer_service.metrics import ProducerMetrics
from producer_service.tracing import RequestSpans
from shared.runtime.tracing import carried_headers

_ACCEPTABLE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_JSON = b"application/json"
_CLIENT_GONE = 499  # logged and counted only: nobody is left to answer

# The status, and the body and extra headers to send; no body when the answer is already sent.
Outcome = tuple[int, bytes | None, RawHeaders]


class RequestRecorder:
    """Request ids, per-route request counts and (when http.access_log is on) one line each."""

    def __init__(self, metrics: ProducerMetrics, routes: Collection[str], access_log: bool) -> None:
        self._counts = metrics.requests
        self._routes = frozenset(routes)
        self._log = AccessLog() if access_log else None
        # Unique without a random draw per request: a random 16-hex prefix per process, then a
        # counter.
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count()

    def request_id(self, offered: bytes | None) -> str:
        """The client's X-Request-ID when it is safe to echo, else a new one."""
        if offered is not None:
            candidate = offered.decode("latin-1")
            if _ACCEPTABLE_ID.match(candidate):
                return candidate
        return f"{self._prefix}{next(self._counter):016x}"

    def flush(self) -> None:
        """Hand every access-log line so far to the log writer (at shutdown)."""
        if self._log is not None:
            self._log.flush()

    def finished(
        self, method: str, path: str, status: int, started: float, request_id: str
    ) -> None:
        """Count the answered request and write its access-log line."""
        # Unknown paths share one label, so a scan cannot blow up the metric's cardinality.
        self._counts[(path if path in self._routes else "other", status)] += 1
        if self._log is not None:
            duration_ms = (time.perf_counter() - started) * 1000
            self._log.request(time.time(), request_id, method, path, status, duration_ms)


class RequestPipeline:
    """Every request's id, dispatch, error answers, count and access-log line."""

    def __init__(
        self,
        router: ASGIApp,
        ingestion: Ingestion,
        recorder: RequestRecorder,
        errors: Tally[str],
        spans: RequestSpans | None = None,
    ) -> None:
        self._router = router
        self._ingestion = ingestion
        self._routes = ingestion.routes
        self._recorder = recorder
        self._errors = errors
        self._spans = spans

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._router(scope, receive, send)  # the lifespan
            return
        started = time.perf_counter()
        # Header names arrive lower-cased (ASGI); a repeated header keeps its last value.
        headers: dict[bytes, bytes] = dict(scope["headers"])
        request_id = self._recorder.request_id(headers.get(b"x-request-id"))
        publish = self._routes.get(scope["path"])
        spans = self._spans
        if publish is None:
            status, body, extra = await self._forward(scope, receive, send, request_id)
        elif spans is None:
            trace = carried_headers(
                headers.get(b"traceparent"), headers.get(b"tracestate"), request_id
            )
            status, body, extra = await self._outcome(
                self._ingestion.answer(publish, scope, receive, headers, trace), scope
            )
        else:
            with spans.request(scope["method"], scope["path"], headers, request_id) as span:
                status, body, extra = await self._outcome(
                    self._ingestion.answer(publish, scope, receive, headers, span.record_headers),
                    scope,
                )
                span.answered(status)
        if body is not None:
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

    async def _outcome(self, answer: Awaitable[tuple[bytes, RawHeaders]], scope: Scope) -> Outcome:
        """An ingestion request's answer: 202 with its body, or the error it raised; either with
        the routes' RateLimit-Policy."""
        policy = self._ingestion.policy
        try:
            body, extra = await answer
        except ClientGone:
            return _CLIENT_GONE, None, ()
        except Exception as error:
            status, refusal, refused_extra = self._refused(error, scope)
            return status, refusal, policy + refused_extra
        return 202, body, policy + extra

    async def _forward(
        self, scope: Scope, receive: Receive, send: Send, request_id: str
    ) -> Outcome:
        """Let the router answer, with the request id; or the error it raised."""
        status = 0
        id_header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message["headers"], id_header]
            await send(message)

        # With "app" in the scope, Starlette's routes raise their 404 and 405 rather than answer.
        scope["app"] = self
        try:
            await self._router(scope, receive, send_with_id)
        except Exception as error:
            refused = self._refused(error, scope)
            if status == 0:
                return refused
            # A response already under way can only be cut short.
        return status, None, ()

    def _refused(self, error: Exception, scope: Scope) -> Outcome:
        """The one answer to an error: its status, ErrorBody and headers, counted by its code."""
        refusal = as_api_error(error, scope["path"])
        self._errors[refusal.code] += 1
        extra = tuple(
            (name.lower().encode(), value.encode()) for name, value in refusal.headers.items()
        )
        return refusal.status, error_body(refusal), extra
