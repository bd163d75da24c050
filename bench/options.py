"""Options: what to measure and for how long, from the command line."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from bench.metering import ROOT

# The rows the producer is compared with.
_PRODUCER_REFERENCES = ("ceiling", "c_ceiling", "baseline", "baseline_c1", "http_ceiling")
GROUPS = {
    "single": ("single_c1", "single_c16", "single_c64", "single_c256"),
    # The rows the producer's targets compare.
    "producer": (*_PRODUCER_REFERENCES, "single_c1", "single_c64", "batch"),
    "consumers": ("consumer", "consumer_minimum", "consumer_ceiling"),
    "zones": ("zones_transactional", "zones_at_least_once"),
}
# Every row, in the order the table shows them.
ROWS = (
    *_PRODUCER_REFERENCES,
    *GROUPS["single"],
    # POST /biometrics, c64, with one thing on (docs/performance.md), and the batch endpoint.
    *("single_c64_registry", "single_c64_limited", "single_c64_keyed", "batch"),
    *GROUPS["consumers"],
    *GROUPS["zones"],
    *("decode_strict", "decode_tolerant", "memory", "end_to_end", "end_to_end_zones"),
)


@dataclass(frozen=True)
class Options:
    """One run's choices."""

    seconds: float
    rounds: int
    warmup_seconds: float
    memory_seconds: float
    rows: tuple[str, ...]
    output: Path
    profile: bool
    bootstrap_servers: str | None
    schema_registry_url: str | None
    batch_concurrency: int
    events_per_batch: int
    e2e_rate: float | None
    consumer_events: int


def parse_options(argv: list[str] | None = None) -> Options:
    """Parse the command line; unknown row names are an error."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure the pipeline against one local Kafka broker and print a table; "
        "also writes results.json and chart.png.",
    )
    add = parser.add_argument
    add("--seconds", type=float, default=10, help="each row's load (10)")
    add("--rounds", type=int, default=3, help="times each throughput row runs; best kept (3)")
    add(
        "--warmup",
        dest="warmup_seconds",
        metavar="WARMUP",
        type=float,
        default=2,
        help="unmeasured load first (2)",
    )
    add("--memory-seconds", type=float, default=60, help="RSS run (60)")
    rows_help = f"comma-separated rows or groups ({', '.join(ROWS)}; {', '.join(GROUPS)}); all"
    add("--rows", default="all", help=rows_help)
    add("--output", type=Path, default=ROOT / "bench" / "results")
    add("--profile", action="store_true", help="also py-spy the producer, consumer and zones")
    add("--bootstrap-servers", help="use this broker instead of starting a local Kafka")
    add(
        "--schema-registry-url", help="the registry row's registry (Confluent API), not a local one"
    )
    add("--batch-concurrency", type=int, default=16)
    add("--events-per-batch", type=int, default=100)
    add("--e2e-rate", type=float, help="events/s (default: half the best single-event rate)")
    add("--consumer-events", type=int, help="records in the consumer topic (20000 x --seconds)")
    args = parser.parse_args(argv)
    rows, events = _select(parser, args.rows), args.consumer_events or int(20000 * args.seconds)
    return Options(**{**vars(args), "rows": rows, "consumer_events": events})


def _select(parser: argparse.ArgumentParser, text: str) -> tuple[str, ...]:
    if text == "all":
        return ROWS
    chosen: set[str] = set()
    for name in filter(None, (part.strip() for part in text.split(","))):
        if name in GROUPS:
            chosen.update(GROUPS[name])
        elif name in ROWS:
            chosen.add(name)
        else:
            parser.error(f"unknown row {name!r}")
    return tuple(row for row in ROWS if row in chosen)
