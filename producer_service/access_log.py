"""AccessLog: one log line per request (http.access_log), cheap enough for every request.

A request is kept as its time and fields, and the requests of FLUSH_EVERY_S reach the logging
queue together, as one record (shared.runtime.logs.log_batch) that the log format writes as one line
per request: handing each line to the writer thread on its own would cost a thread wake-up and a GIL
hand-over per request. Where a handler of another kind would see the records (as pytest's log
capture does), each request is logged at once, as a record of its own.
"""

from __future__ import annotations

import asyncio
import logging

from shared.runtime.logs import BatchEntry, log_batch, takes_batches

LOGGER = "producer_service.requests"
FLUSH_EVERY_S = 0.05


class AccessLog:
    """Logs requests in batches through configure_logging's queue, or one by one without it."""

    def __init__(self) -> None:
        self._logger = logging.getLogger(LOGGER)
        self._pending: list[BatchEntry] = []

    def request(
        self, now: float, request_id: str, method: str, path: str, status: int, duration_ms: float
    ) -> None:
        """Log one answered request."""
        fields = {
            "request_id": request_id,
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(duration_ms, 3),
        }
        if not self._pending:
            if not self._logger.isEnabledFor(logging.INFO):
                return
            if not takes_batches(self._logger):
                self._logger.info("request", extra=fields)
                return
            asyncio.get_running_loop().call_later(FLUSH_EVERY_S, self.flush)
        self._pending.append((now, fields))

    def flush(self) -> None:
        """Hand the pending requests to logging."""
        entries, self._pending = self._pending, []
        log_batch(self._logger, logging.INFO, "request", entries)
