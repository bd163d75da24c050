"""The baseline and the HTTP ceiling, served as the producer is (docs/performance.md)."""

from __future__ import annotations

import argparse
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import uvicorn
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.kafka.options import producer_options
from shared.runtime.lifecycle import start_service
from shared.runtime.probes import probe_routes
from shared.runtime.settings import Settings


def create_baseline_app(settings: Settings) -> Starlette:
    """POST /biometrics: parse, then send_and_wait with linger 0, one flush per request."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        # The course's ClientGateway pattern: produce, then flush before answering.
        producer = AIOKafkaProducer(**{**producer_options(settings), "linger_ms": 0})
        await producer.start()
        try:
            yield {"producer": producer}
        finally:
            await producer.stop()

    async def post(request: Request) -> Response:
        body = await request.body()
        key = orjson.loads(body)["deviceId"].encode()
        sent = await request.state.producer.send_and_wait(settings.kafka.topic, body, key=key)
        answer = {"topic": sent.topic, "partition": sent.partition, "offset": sent.offset}
        return Response(orjson.dumps(answer), 202, media_type="application/json")

    return _app(post, lifespan)


def create_noop_app() -> Starlette:
    """POST /biometrics: read and parse the body, answer 202 and do nothing else."""

    async def post(request: Request) -> Response:
        orjson.loads(await request.body())
        return Response(b"{}", 202, media_type="application/json")

    return _app(post)


def _app(post: Any, lifespan: Any = None) -> Starlette:
    # The services' probes; Starlette serves /readyz only once the lifespan has run, so the
    # Kafka client (if any) is connected.
    probes = probe_routes(CollectorRegistry(), is_ready=lambda: True)
    return Starlette(
        routes=[Route("/biometrics", post, methods=["POST"]), *probes], lifespan=lifespan
    )


def main(argv: list[str] | None = None) -> None:
    """Serve the chosen reference app on http.host:http.port until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.reference_apps")
    parser.add_argument("app", choices=["baseline", "noop"])
    args = parser.parse_args(argv)
    settings = start_service(f"bench-{args.app}")
    app = create_baseline_app(settings) if args.app == "baseline" else create_noop_app()
    config = uvicorn.Config(
        app, host=settings.http.host, port=settings.http.port, loop="uvloop", http="httptools",
        lifespan="on", access_log=False, log_config=None,
    )  # fmt: skip
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
