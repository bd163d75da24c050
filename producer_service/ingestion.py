"""Ingestion: POST /biometrics and POST /biometrics/batch, answered as plain ASGI.

The request pipeline hands these two paths here rather than to Starlette: the routes that carry
the load skip Starlette's routing, Request objects and response classes. Each request is checked,
its body read and validated once, published and its 202 body returned; every refusal is raised
(an ApiError, or the schema's and the publisher's own errors) for the pipeline to answer.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import msgspec
from starlette.types import Receive, Scope

from producer_service.auth import ApiKeys
from producer_service.deadlines import BodyDeadlines, is_body_timeout
from producer_service.errors import (
    InvalidIdempotencyKeyError,
    MethodNotAllowedError,
    PayloadTooLargeError,
    RawHeaders,
    RequestTimeoutError,
    UnsupportedMediaError,
)
from producer_service.idempotency import IdempotencyKeys, fingerprint, parse_key
from producer_service.publisher import Delivery, Publisher
from producer_service.rate_limit import DeviceLimits
from shared.contracts.schema import Biometrics, parse_event, parse_events
from shared.kafka.headers import RecordHeaders, event_keys
from shared.runtime.settings import HttpSettings

EVENT_PATH = "/biometrics"
BATCH_PATH = "/biometrics/batch"

_JSON = b"application/json"
_encode = msgspec.json.Encoder().encode

# (body, publisher, the record headers, the API key's number or 0, the Idempotency-Key or None)
# -> (202 body, extra headers)
Publish = Callable[
    [bytes, Publisher, RecordHeaders, int, bytes | None], Awaitable[tuple[bytes, RawHeaders]]
]
# Where the 400 for a missing Idempotency-Key points (the draft asks for a link).
KEY_HELP = {"Link": '</docs>; rel="help"'}


class BatchAccepted(msgspec.Struct, frozen=True, gc=False):
    """Each record's coordinates, in request order."""

    records: list[Delivery]


class ClientGone(Exception):
    """The client disconnected before its body arrived."""


class Ingestion:
    """The ingestion routes; `publisher` is set while the app runs (create_app's lifespan)."""

    def __init__(self, http: HttpSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.publisher: Publisher | None = None
        self._max_body = http.max_body_bytes
        self._max_events = http.max_batch_events
        self._deadlines = BodyDeadlines(http.body_timeout_s)
        keys = (key.get_secret_value() for key in http.api_keys)
        self._keys = ApiKeys(keys) if http.require_api_key else None
        rate = http.device_rate_per_s
        self.limits = DeviceLimits(rate, http.device_burst, clock) if rate > 0 else None
        self._require_key = http.require_idempotency_key
        self.idempotency = IdempotencyKeys(
            http.idempotency_window_s, http.idempotency_max_bytes, clock
        )
        # Added to every answer of these routes: RateLimit-Policy when devices are limited.
        self.policy: RawHeaders = () if self.limits is None else self.limits.policy
        # Each path and how its body is published.
        self.routes: dict[str, Publish] = {EVENT_PATH: self._event, BATCH_PATH: self._batch}

    def ready(self) -> bool:
        """Whether the publisher is open and can take events now."""
        publisher = self.publisher
        return publisher is not None and publisher.ready()

    async def answer(
        self,
        publish: Publish,
        scope: Scope,
        receive: Receive,
        headers: dict[bytes, bytes],
        trace: RecordHeaders,
    ) -> tuple[bytes, RawHeaders]:
        """The 202 body and its extra headers once the request's events are acknowledged, or
        raise why not."""
        if scope["method"] != "POST":
            raise MethodNotAllowedError()
        key = 0
        if self._keys is not None:
            key = self._keys.identify(headers.get(b"authorization", b"").decode("latin-1"))
        media_type = headers.get(b"content-type", b"").partition(b";")[0].strip().lower()
        if media_type != _JSON:
            shown = media_type.decode("latin-1") or "none"
            raise UnsupportedMediaError(f"expected Content-Type application/json, got {shown}")
        raw_key = headers.get(b"idempotency-key")
        if raw_key is None and self._require_key:
            raise InvalidIdempotencyKeyError(
                "this service needs an Idempotency-Key header on every POST (a new key for each "
                "new request, the same key on its retries): see /docs and the devices manual",
                headers=KEY_HELP,
            )
        idempotency_key = None if raw_key is None else parse_key(raw_key)
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self._max_body:
            raise PayloadTooLargeError(_too_large(self._max_body))
        publisher = self.publisher
        if publisher is None:
            raise RuntimeError("no publisher: the app's lifespan has not run")
        body = await self._read_body(receive)
        if idempotency_key is None:
            return await publish(body, publisher, trace, key, None)
        return await self.idempotency.answer(
            (key, idempotency_key),
            fingerprint(scope["path"], body),
            publish,
            body,
            publisher,
            trace,
            key,
            idempotency_key,
        )

    async def _event(
        self,
        body: bytes,
        publisher: Publisher,
        trace: RecordHeaders,
        key: int,
        idempotency_key: bytes | None,
    ) -> tuple[bytes, RawHeaders]:
        event = parse_event(body)
        limits = self.limits
        state = () if limits is None else limits.take({_device(event, key): 1})
        keys = None if idempotency_key is None else event_keys(idempotency_key, 1, batch=False)
        [delivery] = await publisher.publish((event,), trace, keys)
        return _encode(delivery), state

    async def _batch(
        self,
        body: bytes,
        publisher: Publisher,
        trace: RecordHeaders,
        key: int,
        idempotency_key: bytes | None,
    ) -> tuple[bytes, RawHeaders]:
        events = parse_events(body, self._max_events)
        limits = self.limits
        state = () if limits is None else limits.take(Counter(_device(e, key) for e in events))
        keys = None
        if idempotency_key is not None:
            keys = event_keys(idempotency_key, len(events), batch=True)
        deliveries = await publisher.publish(events, trace, keys)
        return _encode(BatchAccepted(deliveries)), state

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
            raise ClientGone()
        if size > self._max_body:
            raise PayloadTooLargeError(_too_large(self._max_body))
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _device(event: Biometrics, key: int) -> int:
    """The event's bucket: its device, under the request's API key (0 without keys)."""
    return key << 128 | event.deviceId.int


def _too_large(limit: int) -> str:
    return f"request body is larger than {limit} bytes (http.max_body_bytes)"
