"""SchemaRegistry: a Confluent-compatible Schema Registry's REST API; and Confluent's wire format.

The wire format of a value: the byte 0 (the "magic byte"), the schema id as 4 bytes big-endian,
then the payload (here JSON). A plain JSON value never starts with a 0 byte, so both forms can
share a topic while it migrates.

Errors: RegistryUnavailableError when the registry cannot be reached or fails (5xx, timeout):
worth retrying. RegistryRefusedError when it answers no (a refused login, an incompatible or
invalid schema): no retry helps. UnknownSchemaError when an id is not in the registry.
"""

from __future__ import annotations

import ssl
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2 as httpx
import orjson

from shared.runtime.settings import SchemaRegistrySettings, Settings

__all__ = [
    "HEADER_SIZE",
    "MAGIC_BYTE",
    "RegistryRefusedError",
    "RegistryUnavailableError",
    "SchemaRegistry",
    "UnknownSchemaError",
    "frame_prefix",
    "framed_schema_id",
    "schema_registry",
    "split_frame",
    "value_subject",
]

MAGIC_BYTE = 0
_HEADER = struct.Struct(">BI")
HEADER_SIZE = _HEADER.size  # 5
_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


def frame_prefix(schema_id: int) -> bytes:
    """The 5 bytes that go before every payload written with this schema id."""
    return _HEADER.pack(MAGIC_BYTE, schema_id)


def framed_schema_id(value: bytes) -> int | None:
    """The schema id of a framed value, None for a plain one; only the header is read."""
    if len(value) >= HEADER_SIZE and value[0] == MAGIC_BYTE:
        schema_id: int = _HEADER.unpack_from(value)[1]
        return schema_id
    return None


def split_frame(value: bytes) -> tuple[int | None, bytes]:
    """(schema id, payload) of a framed value; (None, value) of a plain one."""
    if len(value) >= HEADER_SIZE and value[0] == MAGIC_BYTE:
        _, schema_id = _HEADER.unpack_from(value)
        return schema_id, value[HEADER_SIZE:]
    return None, value


def value_subject(topic: str) -> str:
    """The subject of a topic's values under the TopicNameStrategy."""
    return f"{topic}-value"


class RegistryUnavailableError(ConnectionError):
    """The registry could not be reached, or failed; a later try may succeed."""


class RegistryRefusedError(Exception):
    """The registry refused the request (login, compatibility, an invalid schema)."""


class UnknownSchemaError(Exception):
    """No schema has this id in the registry."""


class SchemaRegistry:
    """An async client of one registry; schemas fetched by id are cached for good (an id's
    schema never changes)."""

    def __init__(self, settings: SchemaRegistrySettings) -> None:
        if not settings.url:
            raise ValueError("schema_registry.url is empty: the registry is off")
        user_info = settings.basic_auth_user_info.get_secret_value()
        key, _, secret = user_info.partition(":")
        verify: ssl.SSLContext | bool = True
        if settings.ssl_cafile:
            verify = ssl.create_default_context(cafile=settings.ssl_cafile)
        self.url = settings.url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.url,
            auth=(key, secret) if user_info else None,
            verify=verify,
            timeout=settings.timeout_s,
            headers={"Accept": _CONTENT_TYPE},
        )
        self._schemas: dict[int, dict[str, Any]] = {}

    async def close(self) -> None:
        """Close the connections."""
        await self._client.aclose()

    async def register(self, subject: str, schema: dict[str, Any], compatibility: str = "") -> int:
        """Register a JSON Schema under `subject` (or find it there); return its id. With
        `compatibility`, the subject's level is set to it first, so the schema is checked at
        that level; refused, RegistryRefusedError's one line names the subject, the level and
        the registry's reason."""
        doing = f"registering the schema of {subject}"
        if compatibility:
            await self.set_compatibility(subject, compatibility)
            doing += f" at {compatibility}"
        # Keys sorted: the same schema is the same text, so registering it again finds it.
        text = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS).decode()
        body = {"schemaType": "JSON", "schema": text}
        answer = await self._request(
            "POST", f"/subjects/{subject}/versions", doing, content=orjson.dumps(body)
        )
        return int(answer["id"])

    async def set_compatibility(self, subject: str, level: str) -> None:
        """Make `level` the compatibility level of `subject`: from now on the registry refuses a
        schema registered under it that is not compatible at that level."""
        body = orjson.dumps({"compatibility": level})
        await self._request(
            "PUT", f"/config/{subject}", f"setting {subject} to {level}", content=body
        )

    async def schema(self, schema_id: int) -> dict[str, Any]:
        """The JSON Schema with this id; UnknownSchemaError if there is none."""
        if schema_id not in self._schemas:
            answer = await self._request(
                "GET", f"/schemas/ids/{schema_id}", f"looking up schema id {schema_id}"
            )
            self._schemas[schema_id] = orjson.loads(answer["schema"])
        return self._schemas[schema_id]

    async def _request(
        self, method: str, path: str, doing: str, content: bytes | None = None
    ) -> dict[str, Any]:
        headers = {"Content-Type": _CONTENT_TYPE} if content is not None else None
        try:
            response = await self._client.request(method, path, content=content, headers=headers)
        except httpx.HTTPError as error:
            raise RegistryUnavailableError(
                f"schema registry {self.url} unreachable while {doing}: {error!r}"
            ) from error
        if response.status_code < 300:
            answer: dict[str, Any] = response.json()
            return answer
        reason = _reason(response)
        if response.status_code >= 500 or response.status_code == 429:
            raise RegistryUnavailableError(f"schema registry failed while {doing}: {reason}")
        if response.status_code == 404 and path.startswith("/schemas/ids/"):
            raise UnknownSchemaError(f"schema registry has no {doing.split(' ', 2)[2]}: {reason}")
        if response.status_code in (401, 403):
            reason += "; check schema_registry.basic_auth_user_info"
        raise RegistryRefusedError(f"schema registry refused {doing}: {reason}")


def _reason(response: httpx.Response) -> str:
    """The status and the registry's own message (it never repeats credentials)."""
    try:
        message = response.json().get("message")
    except ValueError:
        message = None
    return f"HTTP {response.status_code}" + (f", {message}" if message else "")


@asynccontextmanager
async def schema_registry(settings: Settings) -> AsyncIterator[SchemaRegistry | None]:
    """The registry's client, closed after the block; None with the registry off."""
    if not settings.schema_registry.url:
        yield None
        return
    registry = SchemaRegistry(settings.schema_registry)
    try:
        yield registry
    finally:
        await registry.close()
