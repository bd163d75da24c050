"""`eventually`: ask again and again until a condition holds, or fail at a deadline naming what
was awaited and the last value seen. For what offers no event to await: a broker's metadata or
offsets, a probe over HTTP, a server's flag, another process's log."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx2 as httpx

T = TypeVar("T")

_NOTHING_YET = "nothing yet"


async def eventually(
    observe: Callable[[], Awaitable[T]] | Callable[[], T],
    until: Callable[[T], object] = bool,
    *,
    timeout_s: float,
    awaiting: str,
    interval_s: float = 0.2,
    ignoring: tuple[type[Exception], ...] = (),
    context: Callable[[], object] | None = None,
) -> T:
    """Call `observe` (a function or a coroutine function) every `interval_s` until `until` holds
    for its value, and return that value; an exception of `ignoring` counts as not yet.

    At the deadline, fail with an AssertionError naming `awaiting`, the last value (or exception)
    seen and, if given, `context()` (say, a service's last log lines)."""
    last: object = _NOTHING_YET
    deadline = asyncio.timeout(timeout_s)
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
        raise _failure(awaiting, timeout_s, last, context) from None


def eventually_blocking(
    observe: Callable[[], T],
    until: Callable[[T], object] = bool,
    *,
    timeout_s: float,
    awaiting: str,
    interval_s: float = 0.2,
    ignoring: tuple[type[Exception], ...] = (),
    context: Callable[[], object] | None = None,
) -> T:
    """`eventually` for code outside an event loop: the same, sleeping between calls."""
    last: object = _NOTHING_YET
    deadline = time.monotonic() + timeout_s
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
            raise _failure(awaiting, timeout_s, last, context)
        time.sleep(interval_s)


async def until_status(client: httpx.AsyncClient, path: str, status: int, timeout_s: float) -> None:
    """Poll a probe until it answers `status` (a probe has no event to await)."""
    await eventually(
        lambda: client.get(path),
        lambda response: response.status_code == status,
        timeout_s=timeout_s,
        awaiting=f"GET {path} answering {status}",
    )


def _failure(
    awaiting: str, timeout_s: float, last: object, context: Callable[[], object] | None
) -> AssertionError:
    message = f"not within {timeout_s:g} s: {awaiting}; last seen: {last!r}"
    if context is not None:
        message += f"\n{context()}"
    return AssertionError(message)
