"""A service's life: its settings loaded or refused (exit 2), its logs started, its event loop
run, and for a Kafka loop, how it stops (signals only set a flag; the work in hand finishes).

A Kafka loop's exit codes (run_kafka_loop): 0 after SIGTERM/SIGINT, the batch in hand committed;
1 when shutting down outlasts its timeout, or on an error the loop names as fatal; 2 on bad
configuration; 3 when Kafka refuses the SASL login.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any, NoReturn, TypeVar

import uvloop

from shared.kafka.connecting import KafkaAuthenticationError
from shared.kafka.options import KafkaNotConfiguredError, client_options
from shared.runtime.logs import configure_logging
from shared.runtime.settings import Settings, SettingsError, load_settings
from shared.runtime.tasks import finished_within, waiting_tasks
from shared.runtime.tracing import TracingError, check_tracing

__all__ = [
    "ShutdownTimeoutError",
    "run_kafka_loop",
    "start_service",
    "until_stopped",
]

_log = logging.getLogger(__name__)

T = TypeVar("T")


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
            return 3  # shared.kafka.connecting has logged which login was refused, and why
        except fatal as error:
            _log.error(f"{name} stopped by an error", extra={"error": repr(error)})
            return 1
        _log.info(f"{name} exited")
        return 0

    run_service(program, serve)


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
