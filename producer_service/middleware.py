"""RequestRecorder: each request's id, its count and its access-log line; RequestObserver applies
it to the routes Starlette serves (the ingestion routes call it themselves)."""

from __future__ import annotations

import itertools
import re
import secrets
import time
from collections import Counter as Tally
from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from producer_service.access_log import AccessLog
from producer_service.errors import render, unexpected
from producer_service.metrics import ProducerMetrics

_ACCEPTABLE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestRecorder:
    """Request ids, per-route request counts and (when http.access_log is on) one line each."""

    def __init__(self, metrics: ProducerMetrics, routes: Collection[str], access_log: bool) -> None:
        self._counts = metrics.requests
        self._routes = frozenset(routes)
        self._log = AccessLog() if access_log else None
        # Unique without a random draw per request: a random 16-hex prefix per process, then a
        # counter (uuid4 per request cost more than the rest of this middleware together).
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


class RequestObserver:
    """Pure ASGI middleware: honour or make an X-Request-ID, log and count every request, and
    answer an unexpected error as a 500 in the JSON error shape, logged once."""

    def __init__(self, app: ASGIApp, recorder: RequestRecorder, errors: Tally[str]) -> None:
        self.app = app
        self.recorder = recorder
        self.errors = errors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = next((v for n, v in scope["headers"] if n == b"x-request-id"), None)
        request_id = self.recorder.request_id(offered)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as error:
            # Answered here, so neither Starlette nor uvicorn logs it a second time; a response
            # already under way can only be cut short.
            response = render(unexpected(error, scope["path"]), self.errors)
            if status == 0:
                await response(scope, receive, send_with_id)
        finally:
            self.recorder.finished(scope["method"], scope["path"], status, started, request_id)
