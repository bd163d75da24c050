"""The AsyncAPI 3.0 document of the topics the services write and read: the events topic, its
dead-letter topic and the zone events, as the settings in effect configure them.

The payload schemas are generated from the msgspec definitions that validate and encode the
events (as the OpenAPI document's are), the messages' headers are those the services write
(shared.contracts.asyncapi_messages), and each topic's partitions, replicas and configs are those a
missing topic is created with (shared.kafka.topics.ensure_topics). With schema_registry.url set, the
server names the registry and the messages say that values are framed in Confluent's wire format.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec
import orjson

from shared.contracts.asyncapi_messages import (
    BINDING_VERSION,
    DEAD_LETTER,
    SCHEMA_REF,
    asyncapi_messages,
)
from shared.contracts.schema import Biometrics
from shared.contracts.zones import HeartRateZoneReached
from shared.runtime.settings import KafkaSettings, Settings

__all__ = [
    "asyncapi_document",
    "asyncapi_json",
]

_SASL_SCHEMES = {"PLAIN": "plain", "SCRAM-SHA-256": "scramSha256", "SCRAM-SHA-512": "scramSha512"}
# Kafka's default (the broker's log.cleanup.policy), kept unless kafka.topic_configs sets one.
_DEFAULT_CLEANUP_POLICY = "delete"
# The message each channel carries.
_CHANNEL_MESSAGES = {
    "events": Biometrics.__name__,
    "deadLetters": DEAD_LETTER,
    "zoneEvents": HeartRateZoneReached.__name__,
}
# Each operation by its name: its action, the service, the channel, what it does.
_OPERATIONS = {
    "produceEvents": (
        "send",
        "producer",
        "events",
        "The producer writes each event it accepts, keyed by its device id; it answers 202 once "
        "the broker has acknowledged the record.",
    ),
    "consumeEvents": (
        "receive",
        "consumer",
        "events",
        "The consumer writes each event as a JSON line on its stdout, then commits its offset "
        "(at least once).",
    ),
    "setAsideFromConsumer": (
        "send",
        "consumer",
        "deadLetters",
        "The consumer sets aside a record it cannot decode, or cannot handle after "
        "consumer.handler_retries retries, before it commits the record's offset.",
    ),
    "processEvents": (
        "receive",
        "zone processor",
        "events",
        "The zone processor reads the events with isolation.level read_committed and commits "
        "its offsets in the transactions of what it writes (exactly once).",
    ),
    "produceZoneEvents": (
        "send",
        "zone processor",
        "zoneEvents",
        "The zone processor writes a HeartRateZoneReached event for each heart-rate reading at "
        "50% of maxHeartRate or more, in a Kafka transaction with the input offsets: read them "
        "with isolation.level read_committed.",
    ),
    "setAsideFromZoneProcessor": (
        "send",
        "zone processor",
        "deadLetters",
        "The zone processor sets aside a record it cannot decode, in the transaction that "
        "commits the record's offset.",
    ),
}


def asyncapi_document(settings: Settings) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the services' topics under these settings."""
    kafka = settings.kafka
    _, schemas = msgspec.json.schema_components(
        [Biometrics, HeartRateZoneReached], ref_template=SCHEMA_REF
    )
    topics = {
        "events": kafka.topic,
        "deadLetters": kafka.dead_letter_topic,
        "zoneEvents": settings.zones.topic,
    }
    framing = "framed in Confluent's wire format" if settings.schema_registry.url else "plain"
    document: dict[str, Any] = {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Biometrics pipeline events",
            "version": "1.0.0",
            "description": "The Kafka topics of the biometrics pipeline: the producer writes the "
            "events it accepts over HTTP, the consumer and the zone processor read them, the zone "
            "processor writes HeartRateZoneReached events in Kafka transactions, and both readers "
            "set aside what they cannot handle in the dead-letter topic. The events are JSON, "
            f"{framing}.",
        },
        "defaultContentType": "application/json",
        "servers": {"kafka": _server(settings)},
        "channels": {name: _channel(kafka, topic, name) for name, topic in topics.items()},
        "operations": {
            name: _operation(settings, *operation) for name, operation in _OPERATIONS.items()
        },
        "components": {
            "schemas": schemas,
            # The key is the device id, as the event's schema has it.
            "messages": asyncapi_messages(
                settings, schemas[Biometrics.__name__]["properties"]["deviceId"]
            ),
        },
    }
    if scheme := _SASL_SCHEMES.get(kafka.sasl_mechanism):
        document["components"]["securitySchemes"] = {
            "sasl": {
                "type": scheme,
                "description": f"SASL {kafka.sasl_mechanism} with kafka.sasl_username and "
                "kafka.sasl_password.",
            }
        }
    return document


def asyncapi_json(settings: Settings) -> bytes:
    """The document as indented JSON ending in a newline: what is served and what is written."""
    return orjson.dumps(asyncapi_document(settings), option=orjson.OPT_INDENT_2) + b"\n"


def _server(settings: Settings) -> dict[str, Any]:
    kafka = settings.kafka
    server: dict[str, Any] = {
        "host": kafka.bootstrap_servers or "{bootstrapServers}",
        "protocol": "kafka" if kafka.security_protocol == "PLAINTEXT" else "kafka-secure",
        "description": "The Kafka cluster, by its bootstrap servers (kafka.bootstrap_servers), "
        f"security_protocol {kafka.security_protocol}.",
    }
    if not kafka.bootstrap_servers:
        server["variables"] = {
            "bootstrapServers": {
                "description": "kafka.bootstrap_servers, empty in these settings: the run "
                "command (./dev run) starts a local Kafka and sets it.",
                "examples": ["127.0.0.1:9092"],
            }
        }
    if kafka.sasl_mechanism in _SASL_SCHEMES:
        server["security"] = [{"$ref": "#/components/securitySchemes/sasl"}]
    if url := settings.schema_registry.url:
        server["bindings"] = {
            "kafka": {
                "schemaRegistryUrl": _without_user_info(url),
                "schemaRegistryVendor": "confluent",
                "bindingVersion": BINDING_VERSION,
            }
        }
    return server


def _without_user_info(url: str) -> str:
    # Anyone may read the document: credentials written into the URL stay out of it.
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _channel(kafka: KafkaSettings, topic: str, name: str) -> dict[str, Any]:
    configured = "kafka.topic_configs"
    if topic == kafka.dead_letter_topic:
        configured += " and kafka.dead_letter_topic_configs"
    configs: dict[str, Any] = {"cleanup.policy": [_DEFAULT_CLEANUP_POLICY]}
    for config, value in kafka.configs_for(topic).items():
        configs[config] = value.split(",") if config == "cleanup.policy" else _number(value)
    message = _CHANNEL_MESSAGES[name]
    return {
        "address": topic,
        "description": "The services create the topic when it is missing, with "
        f"kafka.topic_partitions, kafka.topic_replication_factor and {configured}, as the Kafka "
        "binding says (cleanup.policy is Kafka's default unless configured); a topic that "
        "exists keeps its own.",
        "messages": {message: {"$ref": f"#/components/messages/{message}"}},
        "bindings": {
            "kafka": {
                "topic": topic,
                "partitions": kafka.topic_partitions,
                "replicas": kafka.topic_replication_factor,
                "topicConfiguration": configs,
                "bindingVersion": BINDING_VERSION,
            }
        },
    }


def _number(value: str) -> int | str:
    return int(value) if value.removeprefix("-").isdigit() else value


def _operation(
    settings: Settings, action: str, service: str, channel: str, description: str
) -> dict[str, Any]:
    binding: dict[str, Any] = {"clientId": {"type": "string", "enum": [settings.kafka.client_id]}}
    if action == "receive":
        group = settings.consumer if service == "consumer" else settings.zones
        binding["groupId"] = {"type": "string", "enum": [group.group_id]}
    message = _CHANNEL_MESSAGES[channel]
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "description": description,
        "tags": [{"name": service}],
        "messages": [{"$ref": f"#/channels/{channel}/messages/{message}"}],
        "bindings": {"kafka": {**binding, "bindingVersion": BINDING_VERSION}},
    }
