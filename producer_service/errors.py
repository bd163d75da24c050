"""HTTP errors, all rendered as one JSON shape by the handlers registered in create_app.

    ApiError                  {"error": code, "message": text, "details": [...]}
    ├── InvalidJsonError      400 the body is not JSON
    ├── UnauthorizedError     401 no API key, where http.require_api_key is on
    ├── ForbiddenError        403 an API key that is not one of http.api_keys
    ├── MethodNotAllowedError 405 an ingestion route asked with another method than POST
    ├── RequestTimeoutError   408 the body did not arrive within http.body_timeout_s
    ├── PayloadTooLargeError  413 the body is over http.max_body_bytes
    ├── UnsupportedMediaError 415 the content type is not application/json
    ├── SchemaViolationError  422 the JSON breaks the schema; details name each field by path
    ├── BrokerUnavailableError 503 Kafka did not acknowledge in time; Retry-After is set
    └── ServiceOverloadedError 503 too much awaits acknowledgement already; Retry-After is set

The publisher's PublishError and OverloadedError become the two 503s (from_publish_error,
from_overload). Starlette's own HTTPExceptions (404, 405) take the same shape, and so does an
unexpected error: a 500 "internal_error", logged once with its traceback (unexpected()).
"""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import HTTPExceptionHandler

from producer_service.publisher import OverloadedError, PublishError
from shared.schema import InvalidEvent

RETRY_AFTER_SECONDS = 5
OVERLOADED_RETRY_AFTER_SECONDS = 1

_log = logging.getLogger(__name__)

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


class ApiError(Exception):
    """An error the client should see, with a stable code."""

    status = 500
    code = "internal_error"

    def __init__(
        self,
        message: str,
        details: Sequence[Mapping[str, Any]] = (),
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


class BrokerUnavailableError(ApiError):
    """Kafka could not take the records now; the client should retry later."""

    status = 503
    code = "broker_unavailable"


class ServiceOverloadedError(ApiError):
    """The producer already holds as much unacknowledged data as it may; try again shortly."""

    status = 503
    code = "overloaded"


def from_invalid_event(error: InvalidEvent) -> ApiError:
    """Malformed JSON becomes 400; anything else names each bad field by its path, as 422."""
    if error.malformed:
        return InvalidJsonError(f"request body: {error.problems[0].message}")
    details = [{"path": p.path or "body", "message": p.message} for p in error.problems]
    return SchemaViolationError(f"{len(details)} field(s) violate the schema", details)


def from_publish_error(error: PublishError) -> ApiError:
    """A failed or timed-out delivery becomes 503 with Retry-After."""
    message = f"Kafka did not acknowledge the records: {error.reason}"
    if error.delivered:
        message += f" ({error.delivered} of {error.total} were acknowledged; a retry repeats them)"
    return BrokerUnavailableError(message, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def error_body(error: ApiError) -> bytes:
    """The one JSON shape of every error response."""
    return orjson.dumps({"error": error.code, "message": error.message, "details": error.details})


def unexpected(error: Exception, path: str) -> ApiError:
    """An error nothing foresaw: logged here, once, with its traceback; the client gets a 500
    without it."""
    _log.error("unhandled error", exc_info=error, extra={"path": path})
    return ApiError("internal error")


def render(error: ApiError, errors: Tally[str]) -> Response:
    """The error as a response, counted by its code in `errors`."""
    errors[error.code] += 1
    return Response(error_body(error), error.status, error.headers, media_type="application/json")


def from_overload(error: OverloadedError) -> ApiError:
    """Too much awaits acknowledgement: 503 at once, with a short Retry-After."""
    retry_after = {"Retry-After": str(OVERLOADED_RETRY_AFTER_SECONDS)}
    return ServiceOverloadedError(f"overloaded: {error}", headers=retry_after)


def from_http_exception(exc: HTTPException) -> ApiError:
    """Starlette's HTTPException (404, 405...) in our shape."""
    error = ApiError(exc.detail, headers=exc.headers)
    error.status, error.code = exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error")
    return error


def exception_handlers(errors: Tally[str]) -> dict[Any, HTTPExceptionHandler]:
    """Starlette's exception handlers for the routes it serves, each error counted in `errors`.

    Unexpected errors are not among them: RequestObserver answers those, inside the request's id.
    """
    converters: dict[type[Exception], Callable[[Any], ApiError]] = {
        ApiError: lambda error: error,
        PublishError: from_publish_error,
        OverloadedError: from_overload,
        HTTPException: from_http_exception,
    }

    def handler(convert: Callable[[Any], ApiError]) -> HTTPExceptionHandler:
        async def handle(request: Request, exc: Exception) -> Response:
            return render(convert(exc), errors)

        return handle

    return {kind: handler(convert) for kind, convert in converters.items()}
