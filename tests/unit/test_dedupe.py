"""RecentKeys and Duplicates: a copy is a record whose key one of the window's earlier records
carries, within the window's time; the memory is that of the last records only."""

from __future__ import annotations

import tracemalloc
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from shared.kafka.dedupe import Duplicates, RecentKeys
from tests.support.samples import TOPIC, record

P0 = TopicPartition(TOPIC, 0)


def _keyed(offset: int, key: bytes | None, timestamp: int = 0) -> ConsumerRecord[Any, Any]:
    headers = [] if key is None else [("idempotency-key", key)]
    found = record(0, offset, headers=headers)
    found.timestamp = timestamp
    return found


def test_a_key_seen_again_within_the_window_is_a_copy() -> None:
    window = RecentKeys(capacity=10, window_s=60)
    assert window.seen(b"a", 0, offset=0) is False
    assert window.seen(b"b", 1_000, offset=1) is False
    assert window.seen(b"a", 60_000, offset=2) is True  # 60 s after its latest copy: within
    assert window.seen(b"a", 120_001, offset=3) is False  # 60.001 s after the last one
    assert window.seen(None, 0, offset=4) is False
    assert window.seen(None, 0, offset=5) is False


def test_only_the_last_capacity_offsets_are_remembered() -> None:
    window = RecentKeys(capacity=3, window_s=600)
    for offset, key in enumerate((b"a", b"b", None)):
        window.seen(key, 0, offset)
    assert len(window) == 2
    window.seen(b"c", 0, offset=3)  # "a" (offset 0) leaves
    assert window.seen(b"a", 0, offset=4) is False
    assert window.seen(b"b", 0, offset=5) is False  # "b" (offset 1) left when "a" came back
    assert window.seen(b"a", 0, offset=6) is True


def test_offsets_without_records_count_too() -> None:
    # A transaction marker takes an offset: the window is offsets, as the log read back is.
    window = RecentKeys(capacity=3, window_s=600)
    window.seen(b"a", 0, offset=0)
    assert window.seen(b"a", 0, offset=3) is True
    assert window.seen(b"b", 0, offset=10) is False
    assert window.seen(b"a", 0, offset=11) is False  # offset 3 is 8 offsets back


def test_a_key_seen_twice_stays_until_its_last_copy_leaves() -> None:
    window = RecentKeys(capacity=2, window_s=600)
    window.seen(b"a", 0, offset=0)
    window.seen(b"a", 0, offset=1)
    window.seen(b"x", 0, offset=2)  # the first "a" leaves, the second stays
    assert window.seen(b"a", 0, offset=3) is True


def test_records_without_a_key_take_no_memory() -> None:
    window = RecentKeys(capacity=1_000_000, window_s=600)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for offset in range(100_000):
            window.seen(None, 0, offset)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 1_000


def test_duplicates_keep_the_originals_of_each_partition() -> None:
    duplicates = Duplicates(records=100, window_s=600, reader_options={})
    batch = [_keyed(0, b"k"), _keyed(1, b"k"), _keyed(2, None), _keyed(3, b"k#0"), _keyed(4, b"k")]
    kept = duplicates.originals(P0, batch)
    assert [r.offset for r in kept] == [0, 2, 3]
    # Each partition has its own memory.
    assert duplicates.originals(TopicPartition(TOPIC, 1), [_keyed(0, b"k")]) != []
    duplicates.forget([P0])
    assert duplicates.originals(P0, [_keyed(5, b"k")]) != []


def test_a_remembered_record_takes_about_230_bytes_with_its_key() -> None:
    count = 50_000
    window = RecentKeys(capacity=count, window_s=600)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for number in range(count):  # keys of 36 characters, a UUID's, each a header's own bytes
            window.seen(f"{number:08x}-0000-4000-8000-000000000000".encode(), number, number)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    per_record = (after - before) / count
    assert per_record < 260, per_record
