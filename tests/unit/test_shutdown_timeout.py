"""until_stopped's timeout: the work is cancelled, and the error says where it was waiting."""

from __future__ import annotations

import asyncio

import pytest

from shared.runtime.lifecycle import ShutdownTimeoutError, until_stopped


async def _commit_that_never_ends() -> None:
    await asyncio.Event().wait()


async def _work(stop: asyncio.Event) -> None:
    stop.set()  # as SIGTERM does
    await _commit_that_never_ends()


async def test_a_shutdown_past_its_timeout_names_what_the_work_waits_on() -> None:
    with pytest.raises(ShutdownTimeoutError) as raised:
        await until_stopped(_work, shutdown_timeout_s=0.05)

    [chain] = [c for c in raised.value.waiting_in if "_commit_that_never_ends" in c]
    assert "test_shutdown_timeout._work:" in chain
    assert chain.index("_work") < chain.index("_commit_that_never_ends")


async def test_work_that_finishes_in_time_returns_its_result() -> None:
    async def work(stop: asyncio.Event) -> int:
        stop.set()
        await asyncio.sleep(0)
        return 7

    assert await until_stopped(work, shutdown_timeout_s=5) == 7
