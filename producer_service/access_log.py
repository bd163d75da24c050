"""AccessLog: one JSON line per request, cheap enough for every request (http.access_log).

The line has the shape of every other log line (shared.logs.json_line) but is formatted from a
template, its timestamp from a per-second prefix, and the lines of one event-loop turn reach the
writer thread together, so the thread wakes once per turn rather than once per request.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import orjson

from shared.logs import LineWriter, current_writer

LOGGER = "producer_service.requests"

_LINE = (
    '{"time":"%s.%06d+00:00","level":"info","logger":"' + LOGGER + '","message":"request",'
    '"request_id":"%s","method":"%s","path":%s,"status":%d,"duration_ms":%.3f}\n'
)


class AccessLog:
    """Writes request lines through configure_logging's writer, or the logging module without it."""

    def __init__(self) -> None:
        self._writer: LineWriter | None = current_writer()
        self._logger = logging.getLogger(LOGGER)
        self._second = -1
        self._prefix = ""
        self._pending: list[bytes] = []

    def request(
        self, now: float, request_id: str, method: str, path: str, status: int, duration_ms: float
    ) -> None:
        """Log one answered request; request_id and method are known to need no escaping."""
        if self._writer is None:
            fields = {"request_id": request_id, "method": method, "path": path, "status": status}
            self._logger.info("request", extra={**fields, "duration_ms": round(duration_ms, 3)})
            return
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        microseconds = int((now - second) * 1_000_000)
        shown = orjson.dumps(path).decode()
        line = _LINE % (self._prefix, microseconds, request_id, method, shown, status, duration_ms)
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append(line.encode())

    def _flush(self) -> None:
        lines, self._pending = self._pending, []
        if self._writer is not None:
            self._writer.put(b"".join(lines))
