"""Scenarios where the consumer side fails: a crash, a rebalance, poison records, a failing sink."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter

import orjson

from consumer_service import EVENT_CONSUMED, run_consumer
from tests.support.fakes import FlakySink
from tests.support.kafka import TopicFactory
from tests.support.processes import service_process
from tests.support.recovery import (
    DEFAULT_REQUEST_TIMEOUT_MS,
    DEFAULT_SESSION_TIMEOUT_MS,
    member_rejoined_s,
)
from tests.support.samples import event_body
from tests.support.servers import running_consumer
from tests.support.settings import service_env, settings_for
from tests.support.topics import RawRecord, committed_offsets, fill_topic, read_topic

BATCH = 50


def _events(count: int) -> list[RawRecord]:
    bodies = [event_body(readings=1) for _ in range(count)]
    return [(b["deviceId"].encode(), orjson.dumps(b)) for b in bodies]


def _consumed(line: dict[str, object]) -> bool:
    return line["message"] == EVENT_CONSUMED


async def test_a_killed_consumer_redelivers_at_most_its_uncommitted_batch(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    topic, total, batch = await topic_factory(3), 6000, 500
    records = _events(total)
    await fill_topic(kafka_bootstrap, topic, records)
    # A short session lets the group notice the dead member soon after the kill.
    env = service_env(
        kafka_bootstrap,
        topic,
        group_id,
        CONSUMER__MAX_POLL_RECORDS=str(batch),
        CONSUMER__SESSION_TIMEOUT_MS="6000",
    )
    async with service_process("consumer_service", env) as first:
        # Half-way through a batch, so that some of what was logged is not committed yet.
        await first.wait_for(_consumed, 2 * batch + batch // 2)
        await first.finish(signal.SIGKILL)
    logged_before_kill = len(first.events())
    assert logged_before_kill < total, "the consumer finished before it could be killed"
    async with service_process("consumer_service", env) as second:
        expected = {key.decode() for key, _ in records if key}
        async with asyncio.timeout(120):
            while {e["key"] for e in first.events() + second.events()} != expected:
                await second.wait_for(_consumed, len(second.events()) + 1)
        assert await second.finish() == 0
    seen = Counter(e["key"] for e in first.events() + second.events())
    duplicates = sum(seen.values()) - total
    print(
        f"consumer killed: in topic={total}, logged before kill={logged_before_kill}, "
        f"logged in all={sum(seen.values())}, unique={len(seen)}, re-deliveries={duplicates}"
    )
    assert len(seen) == total
    assert 0 <= duplicates <= batch


async def test_a_member_joining_and_leaving_mid_stream_skips_nothing(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    topic, total = await topic_factory(6), 30000
    records = _events(total)
    await fill_topic(kafka_bootstrap, topic, records)
    env = service_env(kafka_bootstrap, topic, group_id, CONSUMER__MAX_POLL_RECORDS=str(BATCH))
    expected = {key.decode() for key, _ in records if key}
    async with service_process("consumer_service", env) as first:
        await first.wait_for(_consumed, 2000)
        async with service_process("consumer_service", env) as second:
            # It joins once the first member has finished its batch and rejoined.
            joined_s = member_rejoined_s(DEFAULT_SESSION_TIMEOUT_MS, DEFAULT_REQUEST_TIMEOUT_MS)
            await second.wait_for(_consumed, 500, timeout_s=joined_s)
            assert await second.finish() == 0
        async with asyncio.timeout(120):
            while {e["key"] for e in first.events() + second.events()} != expected:
                await first.wait_for(_consumed, len(first.events()) + 1)
        assignments = await first.metric("biometrics_consumer_rebalances_total")
        assert await first.finish() == 0
    seen = Counter(e["key"] for e in first.events() + second.events())
    print(
        f"rebalance: in topic={total}, logged by first={len(first.events())}, "
        f"by second={len(second.events())}, unique={len(seen)}, "
        f"duplicates={sum(seen.values()) - total}, first's assignments={assignments:g}"
    )
    assert len(seen) == total
    assert assignments >= 3  # alone, shared with the second member, alone again


async def test_poison_records_go_to_the_dead_letter_topic_and_the_consumer_goes_on(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    topic = await topic_factory(1)
    settings = settings_for(kafka_bootstrap, topic, group_id, partitions=1)
    valid = event_body()
    oversized = orjson.dumps({**event_body(), "padding": "x" * 300_000})
    poison = [
        (b"k1", b"this is not JSON"),
        (b"k2", orjson.dumps({"deviceId": "not-a-uuid", "heartRates": []})),
        (b"k3", oversized),
    ]
    await fill_topic(
        kafka_bootstrap, topic, [*poison, (valid["deviceId"].encode(), orjson.dumps(valid))]
    )
    async with running_consumer(settings) as sink:
        [line] = await sink.wait_for_events(1)
    assert line["key"] == valid["deviceId"] and line["offset"] == 3
    letters = await read_topic(kafka_bootstrap, settings.kafka.dead_letter_topic, 3)
    headers = [dict(letter.headers) for letter in letters]
    assert [h["dlq.original.offset"] for h in headers] == [b"0", b"1", b"2"]
    assert all(h["dlq.original.topic"] == topic.encode() for h in headers)
    assert all(h["dlq.original.partition"] == b"0" for h in headers)
    assert b"Invalid JSON" in headers[0]["dlq.error"]
    assert b"deviceId" in headers[1]["dlq.error"]
    assert b"max_record_bytes" in headers[2]["dlq.error"]
    assert [letter.value for letter in letters] == [value for _, value in poison]
    assert await committed_offsets(kafka_bootstrap, group_id) == {0: 4}


async def test_a_failing_sink_is_retried_then_its_record_is_set_aside_and_committed_past(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    topic = await topic_factory(1)
    settings = settings_for(
        kafka_bootstrap,
        topic,
        group_id,
        partitions=1,
        consumer={"handler_retries": 2, "retry_backoff_ms": 10},
    )
    await fill_topic(kafka_bootstrap, topic, _events(2))
    flaky = FlakySink(failures=2)  # the first record succeeds on its last retry
    stop = asyncio.Event()
    task = asyncio.create_task(run_consumer(settings, stop, sink=flaky))
    async with asyncio.timeout(30):
        while len(flaky.lines) < 2:
            await flaky.written.wait()
            flaky.written.clear()
    flaky.failures = 10  # now everything fails: the next record must end in the dead-letter topic
    await fill_topic(kafka_bootstrap, topic, _events(1))
    [letter] = await read_topic(kafka_bootstrap, settings.kafka.dead_letter_topic, 1)
    stop.set()
    async with asyncio.timeout(30):
        assert await task == 3
    assert b"handling failed 3 times" in dict(letter.headers)["dlq.error"]
    assert dict(letter.headers)["dlq.original.offset"] == b"2"
    assert len(flaky.lines) == 2
    assert await committed_offsets(kafka_bootstrap, group_id) == {0: 3}


async def test_a_dead_letter_topic_that_refuses_the_record_ends_the_consumer_in_one_line(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    topic = await topic_factory(1)
    await fill_topic(kafka_bootstrap, topic, [(b"device", b"not json" * 40)])
    # The dead-letter topic takes no record as large as the letter: the poison cannot be set aside.
    env = service_env(
        kafka_bootstrap,
        topic,
        group_id,
        KAFKA__DEAD_LETTER_TOPIC=f"{topic}.small-DLQ",
        KAFKA__DEAD_LETTER_TOPIC_CONFIGS__MAX_MESSAGE_BYTES="100",
    )
    async with service_process("consumer_service", env) as consumer:
        async with asyncio.timeout(60):
            code = await consumer.process.wait()
        await consumer.finish()
    # The one line that explains the exit 1 to an operator, found by its level and error field.
    [stopped] = consumer.matching(lambda line: line["level"] == "error" and "error" in line)
    assert code == 1, consumer.last_output()
    assert "MessageSizeTooLarge" in stopped["error"], stopped
    assert consumer.other_output == [], consumer.last_output()  # no traceback
    assert await committed_offsets(kafka_bootstrap, group_id) == {}
