"""Every instance derives the same transactional id for a partition, from the group and the
partition alone, so whichever instance owns it next fences the one before."""

from __future__ import annotations

from aiokafka import TopicPartition

from zones_service.transactions import transactional_id


def test_the_transactional_id_is_the_group_the_topic_and_the_partition() -> None:
    assert transactional_id("g", TopicPartition("in", 3)) == "g-in-3"
    assert transactional_id("g", TopicPartition("in", 3)) != transactional_id(
        "g", TopicPartition("in", 4)
    )
