"""HTTP errors, all answered in one JSON shape (ErrorBody) by the request pipeline.

    ApiError                  {"error": code, "message": text, "details": [...]}
    ├── InvalidJsonError      400 the body is not JSON
    ├── InvalidIdempotencyKeyError 400 an Idempotency-Key that is not one, or none where needed
    ├── UnauthorizedError     401 no API key, where http.require_api_key is on
    ├── ForbiddenError        403 an API key that is not one of http.api_keys
    ├── MethodNotAllowedError 405 an ingestion route asked with another method than POST
    ├── RequestTimeoutError   408 the body did not arrive within http.body_timeout_s
    ├── PayloadTooLargeError  413 the body is over http.max_body_bytes
    ├── UnsupportedMediaError 415 the content type is not application/json
    ├── SchemaViolationError  422 the JSON breaks the schema; details name each field by path
    ├── IdempotencyKeyReusedError 422 an Idempotency-Key sent again with another request
    ├── RateLimitedError      429 over its device's rate (http.device_rate_per_s); Retry-After set
    ├── BrokerUnavailableError 503 Kafka did not acknowledge in time; Retry-After is set
    └── ServiceOverloadedError 503 too much awaits acknowledgement already; Retry-After is set

as_api_error turns whatever a route raises into one of these: the schema's InvalidEvent becomes
400 or 422, the publisher's PublishError and OverloadedError the two 503s, Starlette's own
HTTPExceptions (404, 405) take their status, and an unexpected error is a 500 "internal_error",
logged once with its traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Annotated

import msgspec
from starlette.exceptions import HTTPException

from producer_service.publisher import OverloadedError, PublishError
from shared.contracts.schema import InvalidEvent

RETRY_AFTER_SECONDS = 5
OVERLOADED_RETRY_AFTER_SECONDS = 1

# The extra headers of an answer, as ASGI sends them: lower-case names, latin-1 values.
RawHeaders = tuple[tuple[bytes, bytes], ...]

_log = logging.getLogger(__name__)

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}
_encode = msgspec.json.Encoder().encode


class ErrorDetail(msgspec.Struct, frozen=True, gc=False):
    """One bad field."""

    path: Annotated[str, msgspec.Meta(examples=["heartRates[1].value"])]
    message: str


class ErrorBody(msgspec.Struct, frozen=True, gc=False):
    """The one shape of every error."""

    error: Annotated[str, msgspec.Meta(examples=["schema_violation"])]
    message: str
    details: list[ErrorDetail]


class ApiError(Exception):
    """An error the client should see, with a stable code."""

    status = 500
    code = "internal_error"

    def __init__(
        self,
        message: str,
        details: Sequence[ErrorDetail] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details)
        self.headers = dict(headers or {})


class InvalidJsonError(ApiError):
    """The body could not be parsed as JSON."""

    status = 400
    code = "invalid_json"


class InvalidIdempotencyKeyError(ApiError):
    """The Idempotency-Key header is malformed, or missing where http.require_idempotency_key."""

    status = 400
    code = "invalid_idempotency_key"


class IdempotencyKeyReusedError(ApiError):
    """The Idempotency-Key was used before with another request."""

    status = 422
    code = "idempotency_key_reused"


class PayloadTooLargeError(ApiError):
    """The body is larger than the configured limit."""

    status = 413
    code = "payload_too_large"


class UnauthorizedError(ApiError):
    """No API key was given."""

    status = 401
    code = "unauthorized"


class ForbiddenError(ApiError):
    """The API key given is not known."""

    status = 403
    code = "forbidden"


class MethodNotAllowedError(ApiError):
    """An ingestion route takes POST only."""

    status = 405
    code = "method_not_allowed"

    def __init__(self) -> None:
        super().__init__("Method Not Allowed", headers={"Allow": "POST"})


class RequestTimeoutError(ApiError):
    """The client did not send its body in time."""

    status = 408
    code = "request_timeout"


class UnsupportedMediaError(ApiError):
    """The request did not say it carries JSON."""

    status = 415
    code = "unsupported_media_type"


class SchemaViolationError(ApiError):
    """The JSON does not match the Biometrics schema."""

    status = 422
    code = "schema_violation"


class RateLimitedError(ApiError):
    """The request's device has sent more than its rate allows; retry after Retry-After."""

    status = 429
    code = "rate_limited"


class BrokerUnavailableError(ApiError):
    """Kafka could not take the records now; the client should retry later."""

    status = 503
    code = "broker_unavailable"


class ServiceOverloadedError(ApiError):
    """The producer already holds as much unacknowledged data as it may; try again shortly."""

    status = 503
    code = "overloaded"


def as_api_error(error: Exception, path: str) -> ApiError:
    """What the client is told of an error any route raised."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, InvalidEvent):
        return from_invalid_event(error)
    if isinstance(error, PublishError):
        return from_publish_error(error)
    if isinstance(error, OverloadedError):
        return from_overload(error)
    if isinstance(error, HTTPException):
        return from_http_exception(error)
    return unexpected(error, path)


def error_body(error: ApiError) -> bytes:
    """The error in the one JSON shape of every error response."""
    return _encode(ErrorBody(error.code, error.message, error.details))


def from_invalid_event(error: InvalidEvent) -> ApiError:
    """Malformed JSON becomes 400; anything else names each bad field by its path, as 422."""
    if error.malformed:
        return InvalidJsonError(f"request body: {error.problems[0].message}")
    details = [ErrorDetail(p.path or "body", p.message) for p in error.problems]
    return SchemaViolationError(f"{len(details)} field(s) violate the schema", details)


def from_publish_error(error: PublishError) -> ApiError:
    """A failed or timed-out delivery becomes 503 with Retry-After."""
    message = f"Kafka did not acknowledge the records: {error.reason}"
    if error.delivered:
        message += f" ({error.delivered} of {error.total} were acknowledged; a retry repeats them)"
    return BrokerUnavailableError(message, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def from_overload(error: OverloadedError) -> ApiError:
    """Too much awaits acknowledgement: 503 at once, with a short Retry-After."""
    retry_after = {"Retry-After": str(OVERLOADED_RETRY_AFTER_SECONDS)}
    return ServiceOverloadedError(f"overloaded: {error}", headers=retry_after)


def from_http_exception(exc: HTTPException) -> ApiError:
    """Starlette's HTTPException (404, 405...) in our shape."""
    error = ApiError(exc.detail, headers=exc.headers)
    error.status, error.code = exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error")
    return error


def unexpected(error: Exception, path: str) -> ApiError:
    """An error nothing foresaw: logged here, once, with its traceback; the client gets a 500
    without it."""
    _log.error("unhandled error", exc_info=error, extra={"path": path})
    return ApiError("internal error")
