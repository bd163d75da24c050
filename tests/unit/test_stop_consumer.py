"""stop_consumer: aiokafka's own cancellation inside AIOKafkaConsumer.stop() does not escape
(aio-libs/aiokafka#647), the connections are closed anyway, and the caller's own cancellation
still propagates."""

from __future__ import annotations

import asyncio

import pytest

from shared.kafka.connecting import stop_consumer


class _Consumer:
    """Stops as aiokafka's consumer does when its fetcher awaits a fetch task it cancelled."""

    def __init__(self, hang: bool = False) -> None:
        self._client = self
        self.hang = hang
        self.connections_closed = False

    async def stop(self) -> None:
        if self.hang:
            await asyncio.Event().wait()
        fetch = asyncio.create_task(asyncio.sleep(10))
        await asyncio.sleep(0)
        fetch.cancel()
        await fetch  # raises the fetch's CancelledError, as Fetcher.close does

    async def close(self) -> None:
        self.connections_closed = True


async def test_a_cancelled_fetch_inside_stop_does_not_escape_and_the_connections_close() -> None:
    consumer = _Consumer()
    await stop_consumer(consumer)  # type: ignore[arg-type]
    assert consumer.connections_closed


async def test_the_callers_own_cancellation_still_propagates() -> None:
    consumer = _Consumer(hang=True)
    task = asyncio.create_task(stop_consumer(consumer))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not consumer.connections_closed
