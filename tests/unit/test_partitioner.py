"""The batcher's partition for a key is the Java client's and aiokafka's."""

from __future__ import annotations

import uuid

import pytest
from aiokafka.partitioner import DefaultPartitioner

from shared.kafka.batcher import key_hash
from tests.support.samples import JAVA_MURMUR2


@pytest.mark.parametrize(("key", "java"), JAVA_MURMUR2.items())
def test_the_key_hash_is_javas_murmur2_made_positive(key: bytes, java: int) -> None:
    assert key_hash(key) == java & 0x7FFFFFFF


@pytest.mark.parametrize("partitions", [1, 3, 6, 7, 64])
def test_device_keys_land_where_aiokafkas_partitioner_puts_them(partitions: int) -> None:
    every = list(range(partitions))
    for length in range(500):
        key = str(uuid.uuid4()).encode()[: length % 40]  # every tail length of the hash
        assert key_hash(key) % partitions == DefaultPartitioner()(key, every, every)
