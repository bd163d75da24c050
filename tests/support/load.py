"""HTTP load on a producer for the fault tests: concurrent clients posting one event at a time,
every answer kept; and what became of the accepted events in the topic."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Collection
from types import TracebackType
from typing import NamedTuple, Self

import httpx2 as httpx

from tests.support.samples import event_body
from tests.support.topics import read_all


class Rejection(NamedTuple):
    """A POST not answered 202: its status, how long it took, its Retry-After."""

    status: int
    elapsed_s: float
    retry_after: str | None


class PostingLoad:
    """`workers` clients, each posting an event and then the next, from entering until leaving.

    `accepted` maps each 202's device id (the record key) to its (partition, offset);
    `rejected` has every other answer. A client that fails (a connection error, say) fails
    wait_until() and the exit from the block.
    """

    def __init__(self, client: httpx.AsyncClient, workers: int) -> None:
        self.client = client
        self.accepted: dict[str, tuple[int, int]] = {}
        self.rejected: list[Rejection] = []
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False
        self._changed = asyncio.Event()

    async def __aenter__(self) -> Self:
        self._running = True
        self._tasks = [asyncio.create_task(self._post()) for _ in range(self._workers)]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Let each client finish the request in hand (cancel them if the block failed)."""
        self._running = False
        if exc is not None:
            for task in self._tasks:
                task.cancel()
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        failures = [r for r in results if isinstance(r, Exception)]
        if exc is None and failures:
            raise failures[0]

    @property
    def statuses(self) -> Counter[int]:
        """How many times each status was answered."""
        counts = Counter(rejection.status for rejection in self.rejected)
        counts[202] = len(self.accepted)
        return counts

    async def wait_until(self, condition: Callable[[], bool], timeout_s: float = 60) -> None:
        """Wait, against a deadline, until the answers so far satisfy `condition`."""
        async with asyncio.timeout(timeout_s):
            while not condition():
                for task in self._tasks:
                    if task.done():
                        task.result()  # a failed client's exception
                        raise AssertionError("a client stopped posting")
                self._changed.clear()
                await self._changed.wait()

    async def wait_for_accepted(
        self, more: int, partition: int | None = None, timeout_s: float = 120
    ) -> None:
        """Wait until `more` events than now are accepted (on `partition`, if one is named)."""

        def accepted() -> int:
            placed = self.accepted.values()
            return len(placed) if partition is None else sum(at[0] == partition for at in placed)

        target = accepted() + more
        await self.wait_until(lambda: accepted() >= target, timeout_s)

    async def _post(self) -> None:
        while self._running:
            body = event_body(readings=1)
            started = time.monotonic()
            response = await self.client.post("/biometrics", json=body)
            if response.status_code == 202:
                delivery = response.json()
                self.accepted[body["deviceId"]] = (delivery["partition"], delivery["offset"])
            else:
                elapsed = time.monotonic() - started
                retry_after = response.headers.get("retry-after")
                self.rejected.append(Rejection(response.status_code, elapsed, retry_after))
            self._changed.set()


class InTopic(NamedTuple):
    """The topic read to its end against the accepted events (keys)."""

    records: int
    missing: list[str]
    duplicated: list[str]


async def accepted_in_topic(
    bootstrap: str, topic: str, partitions: int, accepted: Collection[str]
) -> InTopic:
    """Read the whole topic and count each accepted key: missing, or there more than once."""
    records = await read_all(bootstrap, topic, partitions, "read_uncommitted")
    in_topic = Counter(record.key.decode() for record in records if record.key is not None)
    missing = [key for key in accepted if key not in in_topic]
    return InTopic(len(records), missing, [key for key in accepted if in_topic[key] > 1])
