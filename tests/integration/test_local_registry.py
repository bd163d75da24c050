"""The Schema Registry of dev and tests is a real one: Apicurio's Confluent-compatible API keeps
JSON Schemas by id and refuses incompatible versions; LocalRegistry starts and stops it by PID."""

from __future__ import annotations

import json
import os
import re
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest

from devtools.local_registry import LocalRegistry, LocalRegistryError, ensure_registry_app
from devtools.processes import HOST

_CONTENT_TYPE = {"Content-Type": "application/vnd.schemaregistry.v1+json"}


def _json_schema(*, required: list[str], **properties: str) -> str:
    """A closed JSON Schema object with the named properties of the given JSON types."""
    schema = {
        "type": "object",
        "properties": {name: {"type": kind} for name, kind in properties.items()},
        "required": required,
        "additionalProperties": False,
    }
    return json.dumps(schema)


def _register(client: httpx.Client, subject: str, schema: str) -> httpx.Response:
    body: dict[str, Any] = {"schemaType": "JSON", "schema": schema}
    return client.post(f"subjects/{subject}/versions", json=body, headers=_CONTENT_TYPE)


@pytest.fixture
def registry(schema_registry_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=schema_registry_url, timeout=10) as client:
        yield client


@pytest.fixture
def subject() -> str:
    return f"test-{uuid.uuid4().hex}-value"


def test_a_json_schema_registered_under_a_subject_comes_back_by_its_id(
    registry: httpx.Client, subject: str
) -> None:
    schema = _json_schema(required=["deviceId"], deviceId="string", maxHeartRate="integer")

    registered = _register(registry, subject, schema)
    assert registered.status_code == 200, registered.text
    schema_id = registered.json()["id"]

    fetched = registry.get(f"schemas/ids/{schema_id}")
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["schemaType"] == "JSON"
    assert json.loads(fetched.json()["schema"]) == json.loads(schema)
    assert registry.get(f"subjects/{subject}/versions").json() == [1]


def test_an_incompatible_version_is_refused_under_backward_compatibility(
    registry: httpx.Client, subject: str
) -> None:
    config = registry.put(f"config/{subject}", json={"compatibility": "BACKWARD"})
    assert config.status_code == 200, config.text
    assert registry.get(f"config/{subject}").json()["compatibilityLevel"] == "BACKWARD"
    assert _register(registry, subject, _json_schema(required=["a"], a="string")).is_success

    # A new required field: readers of the new schema cannot read the old records.
    incompatible = _json_schema(required=["a", "b"], a="string", b="integer")
    refused = _register(registry, subject, incompatible)
    # An optional one is backward compatible.
    accepted = _register(registry, subject, _json_schema(required=["a"], a="string", b="integer"))

    assert refused.status_code == 409, refused.text
    assert accepted.status_code == 200, accepted.text
    assert registry.get(f"subjects/{subject}/versions").json() == [1, 2]


def test_local_registry_serves_the_ccompat_api_on_a_free_port_and_stops_by_pid() -> None:
    with LocalRegistry() as local:
        url, pid, log_dir = local.url, local.pid, local.log_file.parent
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/apis/ccompat/v7", url)
        assert httpx.get(f"{url}/subjects").json() == []
        assert pid is not None

    assert local.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not log_dir.exists()


def test_a_registry_that_cannot_start_says_why_with_the_tail_of_its_log() -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        local = LocalRegistry(port=port)
        with pytest.raises(LocalRegistryError, match="exited with") as raised:
            local.start()

    assert f"Port {port} seems to be in use" in str(raised.value)
    assert local.pid is None


def test_the_cached_registry_needs_no_maven(monkeypatch: pytest.MonkeyPatch) -> None:
    runner_jar = ensure_registry_app()
    monkeypatch.setenv("PATH", "")

    assert ensure_registry_app() == runner_jar
