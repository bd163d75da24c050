"""BodyDeadlines: a request must deliver its body in time; one timer watches every request.

A request registers its task and deadline in a dict, and one periodic sweep cancels the tasks
still reading past theirs, with a message that tells this cancellation apart from any other: a
timer per request (`asyncio.timeout()`) would cost as much as validating the event. A late body
is cut off between the timeout and the timeout plus one sweep.
"""

from __future__ import annotations

import asyncio
import time

BODY_TIMEOUT = "request body deadline passed"


class BodyDeadlines:
    """Register a task while it reads its body; past the deadline it is cancelled."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._sweep_every = min(1.0, timeout_s / 4)
        self._reading: dict[asyncio.Task[object], float] = {}
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> asyncio.Task[object]:
        """The current task begins reading its body; returns it, for `done`."""
        task = asyncio.current_task()
        assert task is not None
        self._reading[task] = time.monotonic() + self.timeout_s
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._sweep_every, self._sweep)
        return task

    def done(self, task: asyncio.Task[object]) -> None:
        """The task has its body (or gave up)."""
        self._reading.pop(task, None)

    def _sweep(self) -> None:
        self._timer = None
        now = time.monotonic()
        late = [task for task, deadline in self._reading.items() if deadline <= now]
        for task in late:
            del self._reading[task]
            task.cancel(BODY_TIMEOUT)
        if self._reading:
            self._timer = asyncio.get_running_loop().call_later(self._sweep_every, self._sweep)


def is_body_timeout(error: asyncio.CancelledError) -> bool:
    """Whether the cancellation came from BodyDeadlines (and not from a shutdown)."""
    return error.args == (BODY_TIMEOUT,)
