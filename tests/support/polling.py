"""`eventually`: ask again and again until a condition holds, or fail at a deadline naming what
was awaited and the last value seen. For what offers no event to await: a broker's metadata or
offsets, a probe over HTTP, a server's flag, another process's log."""

from __future__ import annotations

import asyncio
import inspect
import reprlib
import time
from collections.abc import Awaitable, Callable
from typing import Required, TypedDict, TypeVar, Unpack

import httpx2 as httpx

T = TypeVar("T")

_NOTHING_YET = "nothing yet"
_INTERVAL_S = 0.2
# A long value (a whole topic's records) is shown in part.
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 400
_REPR.maxdict = _REPR.maxlist = _REPR.maxset = 30


class Poll(TypedDict, total=False):
    """How `eventually` asks: for `timeout_s` at most, every `interval_s` (0.2 s), counting an
    exception of `ignoring` as not yet. A failure names `awaiting` and the last value seen, and
    adds `context()` if given (say, a service's last log lines)."""

    timeout_s: Required[float]
    awaiting: Required[str]
    interval_s: float
    ignoring: tuple[type[Exception], ...]
    context: Callable[[], object]


async def eventually(
    observe: Callable[[], Awaitable[T]] | Callable[[], T],
    until: Callable[[T], object] = bool,
    **poll: Unpack[Poll],
) -> T:
    """Call `observe` (a function or a coroutine function) until `until` holds for its value,
    and return that value; at the deadline, fail with an AssertionError (see Poll)."""
    interval_s, ignoring = poll.get("interval_s", _INTERVAL_S), poll.get("ignoring", ())
    last: object = _NOTHING_YET
    deadline = asyncio.timeout(poll["timeout_s"])
    try:
        async with deadline:
            while True:
                try:
                    value = observe()
                    if inspect.isawaitable(value):
                        value = await value
                except ignoring as error:
                    last = error
                else:
                    if until(value):  # type: ignore[arg-type]
                        return value  # type: ignore[return-value]
                    last = value
                await asyncio.sleep(interval_s)
    except TimeoutError:
        if not deadline.expired():
            raise  # observe's own
        raise _failure(poll, last) from None


def eventually_blocking(
    observe: Callable[[], T], until: Callable[[T], object] = bool, **poll: Unpack[Poll]
) -> T:
    """`eventually` for code outside an event loop: the same, sleeping between calls."""
    interval_s, ignoring = poll.get("interval_s", _INTERVAL_S), poll.get("ignoring", ())
    last: object = _NOTHING_YET
    deadline = time.monotonic() + poll["timeout_s"]
    while True:
        try:
            value = observe()
        except ignoring as error:
            last = error
        else:
            if until(value):
                return value
            last = value
        if time.monotonic() >= deadline:
            raise _failure(poll, last)
        time.sleep(interval_s)


async def until_status(
    client: httpx.AsyncClient,
    path: str,
    status: int,
    timeout_s: float,
    context: Callable[[], object] | None = None,
) -> None:
    """Poll a probe until it answers `status` (a probe has no event to await); a failure adds
    `context()` (say, the service's last lines)."""
    poll: Poll = {
        "timeout_s": timeout_s,
        "awaiting": f"GET {client.base_url}{path} answering {status}",
    }
    if context is not None:
        poll["context"] = context
    await eventually(
        lambda: client.get(path), lambda response: response.status_code == status, **poll
    )


def _failure(poll: Poll, last: object) -> AssertionError:
    message = f"not within {poll['timeout_s']:g} s: {poll['awaiting']}; "
    message += f"last seen: {_REPR.repr(last)}"
    if "context" in poll:
        message += f"\n{poll['context']()}"
    return AssertionError(message)
