"""RequestObserver: one log line and one metric sample per request, and its request id."""

from __future__ import annotations

import itertools
import re
import secrets
import time
from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from producer_service.metrics import ProducerMetrics
from shared.logs import fast_logger

_ACCEPTABLE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestObserver:
    """Pure ASGI middleware: honour or make an X-Request-ID, log and count every request."""

    def __init__(self, app: ASGIApp, metrics: ProducerMetrics, routes: Collection[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = frozenset(routes)
        self._log = fast_logger("producer_service.requests")
        # Unique without a random draw per request: a random 16-hex prefix per process, then a
        # counter (uuid4 per request cost more than the rest of this middleware together).
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope) or f"{self._prefix}{next(self._counter):016x}"
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            path: str = scope["path"]
            # Unknown paths share one label, so a scan cannot blow up the metric's cardinality.
            route = path if path in self.routes else "other"
            self.metrics.requests.labels(route, str(status)).inc()
            self._log(
                "request",
                request_id=request_id,
                method=scope["method"],
                path=path,
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
            )


def _request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if _ACCEPTABLE_ID.match(candidate):
                return candidate
    return None
