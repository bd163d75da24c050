"""Command line: run a local Kafka broker until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from devtools.local_kafka import LocalKafka, LocalKafkaError, ensure_kafka_classpath


def main(argv: list[str] | None = None) -> int:
    """Start the broker, print its address, and stop it cleanly when told to."""
    parser = argparse.ArgumentParser(prog="python -m devtools", description=__doc__)
    parser.add_argument("--port", type=int, help="PLAINTEXT listener port (default: a free one)")
    parser.add_argument("--data-dir", type=Path, help="keep data here (default: a temp dir)")
    args = parser.parse_args(argv)

    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    # Installed before start so a signal during start-up still ends in an orderly stop.
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    kafka = LocalKafka(port=args.port, data_dir=args.data_dir, libs_dir=ensure_kafka_classpath())
    try:
        kafka.start()
        print(f"bootstrap_servers={kafka.bootstrap_servers}", flush=True)
        print(f"pid={kafka.pid} data_dir={kafka.data_dir}", file=sys.stderr, flush=True)
        while not stop_requested.wait(1.0):
            if not kafka.is_running:
                print(f"broker exited unexpectedly; see {kafka.data_dir}", file=sys.stderr)
                return 1
        return 0
    except LocalKafkaError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        kafka.stop()


if __name__ == "__main__":
    raise SystemExit(main())
