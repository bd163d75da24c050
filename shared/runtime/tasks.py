"""Awaiting work that a stop may end: what a task is waiting in, whether it finished in time,
the result unless stop came first."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from typing import Any, TypeVar

__all__ = [
    "StoppedError",
    "finished_within",
    "unless_stopped",
    "waiting_tasks",
]

T = TypeVar("T")


async def finished_within(task: asyncio.Future[Any], stop: asyncio.Event, timeout_s: float) -> bool:
    """Wait for `task`, which has timeout_s more once stop is set; whether it finished by then.

    An unfinished task is left running: cancelling it is the caller's call.
    """
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([task, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not task.done():
        await asyncio.wait([task], timeout=timeout_s)
    return task.done()


def waiting_tasks() -> list[str]:
    """Each other pending task of the loop as its chain of awaits, outermost first
    ("name: module.function:line > ..."), the innermost being what it waits on."""
    current = asyncio.current_task()
    chains = []
    for task in asyncio.all_tasks():
        if task is current or task.done():
            continue
        chains.append(f"{task.get_name()}: {' > '.join(_awaits(task.get_coro()))}")
    return sorted(chains)


def _awaits(awaitable: object) -> list[str]:
    """`module.function:line` of each coroutine in the chain `awaitable` is suspended in; a
    future it waits on ends the chain as its type (Task.get_stack gives the outermost only)."""
    chain = []
    while (frame := getattr(awaitable, "cr_frame", None)) is not None:
        module = os.path.splitext(os.path.basename(frame.f_code.co_filename))[0]
        chain.append(f"{module}.{frame.f_code.co_name}:{frame.f_lineno}")
        awaitable = getattr(awaitable, "cr_await", None)
    if awaitable is not None:
        chain.append(type(awaitable).__name__)
    return chain


class StoppedError(Exception):
    """Stop was asked for before the awaited work finished."""


async def unless_stopped(stop: asyncio.Event, awaitable: Awaitable[T]) -> T:
    """The awaitable's result; if stop is set first, cancel it and raise StoppedError."""
    work = asyncio.ensure_future(awaitable)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait([work, stopped], return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if work.done():
        return work.result()
    work.cancel()
    raise StoppedError
