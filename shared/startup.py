"""What the services do first (load the settings, refuse bad ones, start the logs, start their
clients) and how the Kafka loops stop (signals only set a flag; the work in hand finishes).

A Kafka loop's exit codes (run_kafka_loop): 0 after SIGTERM/SIGINT, the batch in hand committed;
1 when shutting down outlasts its timeout, or on an error the loop names as fatal; 2 on bad
configuration; 3 when Kafka refuses the SASL login.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any, NoReturn, Protocol, TypeVar

import uvloop

from shared.kafka import KafkaAuthenticationError
from shared.kafka_options import KafkaNotConfiguredError, client_options
from shared.logs import configure_logging
from shared.settings import Settings, SettingsError, load_settings
from shared.tracing import TracingError, check_tracing

_log = logging.getLogger(__name__)

T = TypeVar("T")


class Startable(Protocol):
    """A client that is started before use and stopped after (aiokafka's clients)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


C = TypeVar("C", bound=Startable)


def start_service(program: str) -> Settings:
    """Return the validated settings, or exit 2 with a message naming the bad key."""
    try:
        settings = load_settings()
        client_options(settings.kafka)
        if settings.schema_registry.url == "local":
            raise SettingsError(
                'schema_registry.url "local" asks the run command (./dev run) to start a registry; '
                "a service needs the registry's URL (BIOMETRICS_SCHEMA_REGISTRY__URL)"
            )
        check_tracing(settings.tracing)
    except (SettingsError, KafkaNotConfiguredError, TracingError) as error:
        print(f"{program}: {error}", file=sys.stderr)
        sys.exit(2)
    configure_logging(settings.logging.level, settings.logging.format)
    return settings


def run_service(program: str, serve: Callable[[Settings], Coroutine[Any, Any, int]]) -> NoReturn:
    """start_service(program), then run `serve(settings)` on uvloop and exit with its code."""
    settings = start_service(program)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        sys.exit(runner.run(serve(settings)))


def run_kafka_loop(
    program: str,
    name: str,
    loop: Callable[[Settings, asyncio.Event], Coroutine[Any, Any, object]],
    shutdown_timeout_s: Callable[[Settings], float],
    *,
    unfinished: str,
    fatal: tuple[type[Exception], ...] = (),
) -> NoReturn:
    """run_service for a Kafka loop: `loop(settings, stop)` until SIGTERM/SIGINT sets stop, then
    exit with the code the module docstring gives. `unfinished` says what a shutdown that timed
    out leaves behind; `fatal` errors are logged in one line rather than as a traceback."""

    async def serve(settings: Settings) -> int:
        try:
            await until_stopped(partial(loop, settings), shutdown_timeout_s(settings))
        except ShutdownTimeoutError as error:
            _log.error(f"shutdown timed out; {unfinished}", extra={"waiting_in": error.waiting_in})
            return 1
        except KafkaAuthenticationError:
            return 3  # shared.kafka has logged which login was refused, and why
        except fatal as error:
            _log.error(f"{name} stopped by an error", extra={"error": repr(error)})
            return 1
        _log.info(f"{name} exited")
        return 0

    run_service(program, serve)


async def started(client: C, stop: Callable[[C], Awaitable[None]] | None = None) -> C:
    """The client, started; if starting fails it is stopped again (by `stop`, if given) and the
    error raised, so no half-started client is left open."""
    try:
        await client.start()
    except BaseException:
        await (client.stop() if stop is None else stop(client))
        raise
    return client


# The first generation is collected after this many new container objects rather than 700: a
# request makes dozens (a task, futures, coroutines), so the default collects every few requests.
_GC_YOUNG_THRESHOLD = 10_000


def settle_memory() -> None:
    """Once started: keep what start-up made out of every later collection, and collect less often.

    Clients, modules and settings live as long as the process; gc.freeze() moves them to a
    generation no collection scans, which saves CPU on every request.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(_GC_YOUNG_THRESHOLD, 50, 50)


class ShutdownTimeoutError(TimeoutError):
    """The work outlasted its shutdown timeout; `waiting_in` says where each of its tasks was."""

    def __init__(self, waiting_in: list[str]) -> None:
        super().__init__("shutdown timed out")
        self.waiting_in = waiting_in


async def until_stopped(
    work: Callable[[asyncio.Event], Coroutine[Any, Any, T]], shutdown_timeout_s: float
) -> T:
    """Run `work(stop)`, where SIGTERM and SIGINT only set `stop`.

    Once stop is set the work has shutdown_timeout_s to finish what it has in hand, after which
    it is cancelled and ShutdownTimeoutError raised; its own errors propagate.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    task: asyncio.Task[T] = asyncio.create_task(work(stop))
    if not await finished_within(task, stop, shutdown_timeout_s):
        # Taken before the cancellation unwinds them: what the next failure report needs.
        waiting_in = waiting_tasks()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise ShutdownTimeoutError(waiting_in)
    return task.result()


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
