"""Duplicates: copies of a device's event, produced again by a retry, dropped by the consumers.

A retry that reached another producer instance, or the same one after a restart, or followed a
503 whose records were stored after all, is a second record with the same ``idempotency-key``
header (shared.kafka.headers). A record is a copy when a record at most `records` offsets before it
in its partition carries the same key, at most `window_s` older by record timestamp.

That rule is a function of the partition's log alone, so the memory of keys is too: it is the
keys of the records in the last `records` offsets before the next one to handle (offsets, not
records: a transaction marker takes an offset, and the live memory and the one read back from
the log agree). When a partition is assigned
(at start, after a restart, after a rebalance) the memory is rebuilt by reading those records
back from the log, up to the offset the consumer starts from (the zone processor when the group
assigns it, the consumer on the partition's first records): it matches the committed offsets,
whatever happened to the process that held the partition before, and a transaction that aborts
is followed by a rebuild up to the offset read again. Records without a key are never copies and
take no memory.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from shared.kafka.headers import IDEMPOTENCY_KEY, header_value

__all__ = [
    "Duplicates",
    "RecentKeys",
]

_log = logging.getLogger(__name__)

# Logged after each rebuild, with the partitions, the records read back and the seconds it took.
_RESTORED = "duplicates memory restored"


class RecentKeys:
    """The idempotency keys of one partition's records in the last `capacity` offsets."""

    __slots__ = ("_capacity", "_keys", "_latest", "_offsets", "_window_ms")

    def __init__(self, capacity: int, window_s: float) -> None:
        self._capacity = capacity
        self._window_ms = window_s * 1000
        # The keyed records in the window, oldest first: their offsets and their keys (two deques
        # take less than one of pairs). A record without a key takes no room.
        self._offsets: deque[int] = deque()
        self._keys: deque[bytes] = deque()
        # Each key in the window: (how many of the window's records carry it, the latest one's
        # timestamp).
        self._latest: dict[bytes, tuple[int, int]] = {}

    def __len__(self) -> int:
        return len(self._latest)

    def seen(self, key: bytes | None, timestamp_ms: int, offset: int) -> bool:
        """Whether the record at `offset` is a copy; then remember it as the latest record."""
        latest, offsets, keys = self._latest, self._offsets, self._keys
        first = offset - self._capacity
        while offsets and offsets[0] < first:
            offsets.popleft()
            oldest = keys.popleft()
            count, at = latest[oldest]
            if count == 1:
                del latest[oldest]
            else:
                latest[oldest] = (count - 1, at)
        if key is None:
            return False
        copy = False
        known = latest.get(key)
        if known is not None:
            count, at = known
            copy = timestamp_ms - at <= self._window_ms
            latest[key] = (count + 1, timestamp_ms)
        else:
            latest[key] = (1, timestamp_ms)
        offsets.append(offset)
        keys.append(key)
        return copy


class Duplicates:
    """The recent keys of each partition this member handles."""

    def __init__(
        self,
        records: int,
        window_s: float,
        reader_options: Mapping[str, Any],
    ) -> None:
        self._records = records
        self._window_s = window_s
        self._options = reader_options
        self._windows: dict[TopicPartition, RecentKeys] = {}
        # Bumped when a partition is forgotten: a rebuild that outlives its partition is dropped.
        self._generations: dict[TopicPartition, int] = {}

    @property
    def enabled(self) -> bool:
        return self._records > 0

    def originals(
        self, partition: TopicPartition, records: Sequence[ConsumerRecord[Any, Any]]
    ) -> list[ConsumerRecord[Any, Any]]:
        """The records that are not copies, in order (the copies are the rest: the caller counts
        them where its count has a meaning, such as a committed transaction)."""
        window = self._windows.get(partition)
        if window is None:
            window = self._windows[partition] = RecentKeys(self._records, self._window_s)
        return [
            record
            for record in records
            if not window.seen(
                header_value(record.headers, IDEMPOTENCY_KEY), record.timestamp, record.offset
            )
        ]

    async def ensure(self, partition: TopicPartition, start: int) -> None:
        """Rebuild the partition's memory up to `start`, the first offset about to be handled,
        unless it is held already (the consumer's path: on the first records of a partition
        since it was assigned)."""
        if not self.enabled or partition in self._windows:
            return
        generation = self._generations.get(partition, 0)
        windows = await self._rebuilt({partition: start})
        if self._generations.get(partition, 0) == generation:
            self._windows.update(windows)

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Drop the memory of partitions no longer handled here."""
        for tp in partitions:
            self._windows.pop(tp, None)
            self._generations[tp] = self._generations.get(tp, 0) + 1

    async def restore(self, starts: Mapping[TopicPartition, int]) -> None:
        """Rebuild each partition's memory from the records before the offset it starts from."""
        if self.enabled:
            self._windows.update(await self._rebuilt(starts))

    async def _rebuilt(
        self, starts: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, RecentKeys]:
        started = time.perf_counter()
        windows = {tp: RecentKeys(self._records, self._window_s) for tp in starts}
        ranges = {tp: (max(0, end - self._records), end) for tp, end in starts.items() if end > 0}
        read = await _read_back(self._options, ranges, windows) if ranges else 0
        _log.info(
            _RESTORED,
            extra={
                "partitions": sorted(tp.partition for tp in starts),
                "records": read,
                "seconds": round(time.perf_counter() - started, 3),
            },
        )
        return windows


async def _read_back(
    options: Mapping[str, Any],
    ranges: Mapping[TopicPartition, tuple[int, int]],
    windows: Mapping[TopicPartition, RecentKeys],
) -> int:
    """Feed each partition's records in [start, end) to its window; return how many."""
    consumer = AIOKafkaConsumer(**options)
    await consumer.start()
    read = 0
    try:
        consumer.assign(list(ranges))
        beginnings = await consumer.beginning_offsets(list(ranges))
        remaining = {}
        for tp, (start, end) in ranges.items():
            start = max(start, beginnings[tp])  # retention may have removed the oldest
            if start < end:
                consumer.seek(tp, start)
                remaining[tp] = end
            else:
                consumer.pause(tp)
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batch.items():
                if tp not in remaining:
                    continue
                end, window = remaining[tp], windows[tp]
                for record in records:
                    if record.offset >= end:
                        break
                    window.seen(
                        header_value(record.headers, IDEMPOTENCY_KEY),
                        record.timestamp,
                        record.offset,
                    )
                    read += 1
            for tp in list(remaining):
                if await consumer.position(tp) >= remaining[tp]:
                    del remaining[tp]
    finally:
        await consumer.stop()
    return read
