"""The batcher's partition for a key is the Java client's and aiokafka's, cache or no cache."""

from __future__ import annotations

import uuid

import pytest
from aiokafka.partitioner import DefaultPartitioner

from producer_service.batcher import key_hash

# Kafka's own murmur2 test vectors (clients/src/test/.../utils/UtilsTest.java, testMurmur2).
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "java"), JAVA_MURMUR2.items())
def test_the_key_hash_is_javas_murmur2_made_positive(key: bytes, java: int) -> None:
    assert key_hash(key) == java & 0x7FFFFFFF
    assert key_hash(key) == java & 0x7FFFFFFF  # again, from the cache


@pytest.mark.parametrize("partitions", [1, 3, 6, 7, 64])
def test_device_keys_land_where_aiokafkas_partitioner_puts_them(partitions: int) -> None:
    every = list(range(partitions))
    for _ in range(500):
        key = str(uuid.uuid4()).encode()
        assert key_hash(key) % partitions == DefaultPartitioner()(key, every, every)
