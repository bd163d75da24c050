"""The AsyncAPI document: valid to the AsyncAPI Initiative's own parser, and true to the code (the
schemas msgspec generates, the headers the services write, the topics as configured)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import orjson
import pytest
from opentelemetry.sdk.trace import TracerProvider
from starlette.testclient import TestClient

from producer_service import create_app
from shared.contracts.asyncapi import asyncapi_document, asyncapi_json
from shared.contracts.schema import Biometrics, encode_record, parse_event
from shared.contracts.zones import HeartRateZoneReached, zone_records
from shared.kafka.headers import (
    DEAD_LETTER_HEADERS,
    DLQ_VALUE_OMITTED,
    IDEMPOTENCY_KEY,
    REQUEST_ID,
    TRACE_HEADERS,
    TRACEPARENT,
    TRACESTATE,
)
from shared.kafka.records import dead_letter
from shared.runtime.settings import Settings
from tests.support import ROOT
from tests.support.fakes import RecordingPublisher
from tests.support.samples import event_body, record
from tests.support.settings import clean_env, project_settings, with_changes
from tests.support.skips import require
from zones_service.transform import ZoneTransform

PARSER = ROOT / "devtools" / "asyncapi-parser"
# CI services set CI; .ci/run sets TEST_REQUIRE_NODE.
_REQUIRE_ENVS = ("CI", "TEST_REQUIRE_NODE")
_REGISTRY = {"url": "https://key:secret@registry.example/apis/ccompat/v7"}
_SASL_SSL = {
    "bootstrap_servers": "b1.example:9093,b2.example:9093",
    "security_protocol": "SASL_SSL",
    "sasl_mechanism": "SCRAM-SHA-512",
}
_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _variants() -> dict[str, Settings]:
    """The settings each document is checked under (the defaults are the command's own)."""
    project = project_settings()
    return {
        "schema_registry": with_changes(project, schema_registry=_REGISTRY),
        "sasl_ssl": with_changes(project, kafka=_SASL_SSL, schema_registry=_REGISTRY),
    }


@pytest.fixture(scope="module")
def command_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `python -m devtools.asyncapi --output FILE` writes under the project's settings."""
    output = tmp_path_factory.mktemp("asyncapi") / "defaults.json"
    subprocess.run(
        [sys.executable, "-m", "devtools.asyncapi", "--output", str(output)],
        cwd=ROOT,
        env=clean_env(),
        check=True,
        timeout=60,
    )
    return output


@pytest.fixture(scope="module")
def diagnostics(
    command_output: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[dict[str, str]]]:
    """The parser's diagnostics of each document, by variant; one run of node for all."""
    node = shutil.which("node")
    installed = (PARSER / "node_modules" / "@asyncapi" / "parser" / "package.json").is_file()
    reason = "node or the AsyncAPI parser is missing: ./dev test installs it with npm ci"
    require(node is not None and installed, reason, required_by=_REQUIRE_ENVS)
    assert node is not None
    folder = tmp_path_factory.mktemp("variants")
    files = {"defaults": command_output}
    for name, settings in _variants().items():
        files[name] = folder / f"{name}.json"
        files[name].write_bytes(asyncapi_json(settings))
    broken = orjson.loads(command_output.read_bytes())
    broken["channels"]["events"]["messages"]["Biometrics"]["$ref"] = "#/definitions/Biometrics"
    files["broken"] = folder / "broken.json"
    files["broken"].write_bytes(orjson.dumps(broken))
    validate = [node, str(PARSER / "validate.mjs"), *map(str, files.values())]
    done = subprocess.run(validate, capture_output=True, timeout=120, check=False)
    assert done.returncode in (0, 1), done.stderr.decode()
    report = orjson.loads(done.stdout)
    return {name: report[str(path)] for name, path in files.items()}


@pytest.mark.parametrize("variant", ["defaults", "schema_registry", "sasl_ssl"])
def test_the_asyncapi_parser_reports_no_error_and_no_warning(
    diagnostics: dict[str, list[dict[str, str]]], variant: str
) -> None:
    found = [d for d in diagnostics[variant] if d["severity"] in ("error", "warning")]
    assert found == [], orjson.dumps(found, option=orjson.OPT_INDENT_2).decode()


def test_the_parser_run_reports_an_error_for_a_dangling_reference(
    diagnostics: dict[str, list[dict[str, str]]],
) -> None:
    assert any(d["severity"] == "error" for d in diagnostics["broken"]), diagnostics["broken"]


def test_the_producer_serves_what_the_command_writes(command_output: Path) -> None:
    settings = project_settings()
    with TestClient(create_app(settings, lambda _: RecordingPublisher(settings))) as client:
        served = client.get("/asyncapi.json")
        openapi = client.get("/openapi.json").json()
    assert served.headers["content-type"] == "application/json"
    assert served.content == command_output.read_bytes()
    assert "/asyncapi.json" in openapi["info"]["description"]


def test_the_payload_schemas_are_those_msgspec_generates_from_the_structs() -> None:
    document = asyncapi_document(project_settings())
    _, generated = msgspec.json.schema_components(
        [Biometrics, HeartRateZoneReached], ref_template="#/components/schemas/{name}"
    )
    assert document["components"]["schemas"] == generated
    for name in (Biometrics.__name__, HeartRateZoneReached.__name__):
        payload = document["components"]["messages"][name]["payload"]
        assert payload == {"$ref": f"#/components/schemas/{name}"}


def test_the_records_the_services_write_match_their_payload_and_key_schemas() -> None:
    document = asyncapi_document(project_settings())
    key, value = encode_record(parse_event(orjson.dumps(event_body(maxHeartRate=100))))
    zone_events = zone_records(parse_event(value))
    assert zone_events
    _validate(document, Biometrics.__name__, orjson.loads(value))
    _validate_key(document, Biometrics.__name__, key)
    for zone_key, zone_value in zone_events:
        _validate(document, HeartRateZoneReached.__name__, orjson.loads(zone_value))
        _validate_key(document, HeartRateZoneReached.__name__, zone_key)
    incomplete = orjson.loads(value)
    del incomplete["maxHeartRate"]
    with pytest.raises(jsonschema.ValidationError):
        _validate(document, Biometrics.__name__, incomplete)


@pytest.mark.parametrize("spans", [False, True], ids=["no_spans", "spans"])
def test_the_headers_of_the_producers_records_are_those_of_their_message(spans: bool) -> None:
    settings = project_settings()
    publisher = RecordingPublisher(settings)
    provider = TracerProvider() if spans else None
    app = create_app(settings, lambda _: publisher, tracer_provider=provider)
    request = {"traceparent": _TRACEPARENT, "tracestate": "k=v", "Idempotency-Key": "k-1"}
    try:
        with TestClient(app) as client:
            answer = client.post("/biometrics/batch", json=[event_body()] * 2, headers=request)
    finally:
        if provider is not None:
            provider.shutdown()
    assert answer.status_code == 202
    (headers,), (keys,) = publisher.headers, publisher.keys
    assert keys is not None
    # KafkaPublisher adds each event's key to the request's headers.
    for event_key in keys:
        _assert_described(Biometrics.__name__, [*headers, (IDEMPOTENCY_KEY, event_key)])


def test_the_headers_of_zone_events_and_dead_letters_are_those_of_their_messages() -> None:
    carried = [(TRACEPARENT, _TRACEPARENT.encode()), (TRACESTATE, b"k=v"), (REQUEST_ID, b"r-1")]
    consumed = [*carried, (IDEMPOTENCY_KEY, b"k-1#0")]
    transform = ZoneTransform(zones_topic="zones", dead_letter_topic="dlq", max_record_bytes=4096)
    body = orjson.dumps(event_body(maxHeartRate=100))
    zone_events = transform(record(0, 1, body, headers=consumed))
    assert zone_events.headers == carried
    _assert_described(HeartRateZoneReached.__name__, zone_events.headers)
    letter = dead_letter(record(0, 2, b"x" * 1_000_000, headers=consumed), "too large")
    assert DLQ_VALUE_OMITTED in dict(letter.headers)
    _assert_described("DeadLetter", letter.headers)


def test_every_header_name_of_the_code_is_in_its_message() -> None:
    messages = asyncapi_document(project_settings())["components"]["messages"]
    names = {name: set(message["headers"]["properties"]) for name, message in messages.items()}
    assert names[Biometrics.__name__] == {*TRACE_HEADERS, IDEMPOTENCY_KEY}
    assert names[HeartRateZoneReached.__name__] == set(TRACE_HEADERS)
    assert names["DeadLetter"] == {*TRACE_HEADERS, IDEMPOTENCY_KEY, *DEAD_LETTER_HEADERS}


def test_the_topics_their_sizes_and_configs_follow_the_settings() -> None:
    settings = project_settings(
        kafka={
            "topic": "in",
            "dead_letter_topic": "in.dead",
            "topic_partitions": 12,
            "topic_replication_factor": 3,
            "topic_configs": {"retention_ms": 1000, "cleanup_policy": "compact,delete"},
            "dead_letter_topic_configs": {"retention_ms": 2000},
        },
        zones={"topic": "zones-out"},
    )
    channels = asyncapi_document(settings)["channels"]
    assert [channel["address"] for channel in channels.values()] == ["in", "in.dead", "zones-out"]
    for channel in channels.values():
        binding = channel["bindings"]["kafka"]
        assert (binding["topic"], binding["partitions"], binding["replicas"]) == (
            channel["address"],
            12,
            3,
        )
        configs = binding["topicConfiguration"]
        assert configs["cleanup.policy"] == ["compact", "delete"]
        assert configs["retention.ms"] == (2000 if channel["address"] == "in.dead" else 1000)
    defaults = asyncapi_document(project_settings())["channels"]["events"]["bindings"]["kafka"]
    assert defaults["topicConfiguration"]["cleanup.policy"] == ["delete"]


def test_the_registry_framing_is_declared_only_with_the_registry_on() -> None:
    plain = asyncapi_document(project_settings())
    framed = asyncapi_document(_variants()["schema_registry"])
    assert "bindings" not in plain["servers"]["kafka"]
    assert framed["servers"]["kafka"]["bindings"]["kafka"]["schemaRegistryUrl"] == (
        "https://registry.example/apis/ccompat/v7"  # without the credentials
    )
    for name in (Biometrics.__name__, HeartRateZoneReached.__name__):
        assert "schemaIdLocation" not in plain["components"]["messages"][name]["bindings"]["kafka"]
        binding = framed["components"]["messages"][name]["bindings"]["kafka"]
        assert (binding["schemaIdLocation"], binding["schemaIdPayloadEncoding"]) == (
            "payload",
            "confluent",
        )
    # A dead letter keeps the value it was given, framed or not.
    assert "schemaIdLocation" not in framed["components"]["messages"]["DeadLetter"]["bindings"]


def test_the_server_follows_the_kafka_connection_settings() -> None:
    plain = asyncapi_document(project_settings())["servers"]["kafka"]
    assert (plain["protocol"], plain["host"]) == ("kafka", "{bootstrapServers}")
    document = asyncapi_document(_variants()["sasl_ssl"])
    server = document["servers"]["kafka"]
    assert (server["protocol"], server["host"]) == ("kafka-secure", _SASL_SSL["bootstrap_servers"])
    assert document["components"]["securitySchemes"]["sasl"]["type"] == "scramSha512"


def _validate(document: dict[str, Any], schema: str, instance: Any) -> None:
    """Validate against a schema of the document, its references resolved within it."""
    root = {"$ref": f"#/components/schemas/{schema}", "components": document["components"]}
    jsonschema.Draft7Validator(root).validate(instance)


def _validate_key(document: dict[str, Any], message: str, key: bytes) -> None:
    schema = document["components"]["messages"][message]["bindings"]["kafka"]["key"]
    jsonschema.Draft7Validator(schema).validate(key.decode())


def _assert_described(message: str, headers: list[tuple[str, bytes]]) -> None:
    """Every header is one the message lists, and the message's schema holds for them."""
    schema = asyncapi_document(project_settings())["components"]["messages"][message]["headers"]
    assert {name for name, _ in headers} <= set(schema["properties"])
    jsonschema.Draft7Validator(schema).validate({name: value.decode() for name, value in headers})
