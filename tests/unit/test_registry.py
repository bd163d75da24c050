"""Confluent's wire format: a 0 byte, the schema id in 4 bytes big-endian, then the payload."""

from __future__ import annotations

import orjson
import pytest

from shared.kafka.registry import (
    HEADER_SIZE,
    SchemaRegistry,
    frame_prefix,
    split_frame,
    value_subject,
)
from shared.runtime.settings import load_settings
from tests.support import ROOT
from tests.support.samples import event_body


def test_a_framed_value_is_the_magic_byte_the_big_endian_id_and_the_json() -> None:
    payload = orjson.dumps(event_body())
    framed = frame_prefix(258) + payload
    assert framed[:HEADER_SIZE] == b"\x00\x00\x00\x01\x02"
    assert split_frame(framed) == (258, payload)


@pytest.mark.parametrize("plain", [b'{"deviceId": 1}', b" {}", b"[]", b"", b"\x00\x00"])
def test_a_plain_or_too_short_value_has_no_schema_id(plain: bytes) -> None:
    assert split_frame(plain) == (None, plain)


def test_values_are_registered_under_the_topic_name_strategy() -> None:
    assert value_subject("BiometricsImported") == "BiometricsImported-value"


def test_a_client_needs_a_url() -> None:
    with pytest.raises(ValueError, match=r"schema_registry\.url is empty"):
        SchemaRegistry(load_settings(ROOT, env={}).schema_registry)
