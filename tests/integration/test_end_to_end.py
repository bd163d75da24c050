"""Both services as real processes, as they are deployed: HTTP in, JSON lines out."""

from __future__ import annotations

from tests.support.kafka import TopicFactory
from tests.support.processes import through_the_pair
from tests.support.samples import event_body
from tests.support.settings import service_env


async def test_posted_events_appear_in_the_consumer_output_and_both_stop_cleanly(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    env = service_env(kafka_bootstrap, await topic_factory(3), group_id)
    bodies = [event_body() for _ in range(5)]
    events, _, _ = await through_the_pair(env, bodies)
    assert {e["event"]["deviceId"] for e in events} == {b["deviceId"] for b in bodies}
