"""The end-to-end rows, events POSTed by wrk at a fixed rate (half the best single-event rate of
this run): to the consumer's event line for each, and through the zone processor to its
HeartRateZoneReached visible to a read_committed reader, with the zone processor's RSS."""

from __future__ import annotations

import itertools
import math
import statistics
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen

from bench.consumption import HANDLED
from bench.context import PLACEHOLDER_DEVICE_ID, Bench, Followed, consumed_event, metric, say
from bench.http_load import Load, run_paced_wrk
from bench.metering import cpu_meter, python_module, rss_sampler, rss_summary
from bench.profiler import profile_under
from bench.report import Row
from devtools.processes import free_port, wait_until_serving

DEFAULT_RATE = 500.0
# Enough free connections that the schedule, not the answers, sets when requests leave.
E2E_CONNECTIONS = 256
_CATCH_UP_S = 30.0


@dataclass
class _Chain:
    """A row's running processes: the producer's URL, the processes metered, the far end's
    arrivals, and whether the far end has shown an event yet."""

    url: str
    processes: dict[str, Popen[bytes]]
    arrivals: Followed
    arrived: Callable[[], bool]


def measure(bench: Bench) -> None:
    """The producer and the consumer on a fresh topic; their paced load's latency."""
    if bench.wants("end_to_end"):
        with _pair(bench) as chain:
            bodies = itertools.cycle(bench.files.bodies.read_bytes().splitlines())
            _post_until(chain, bodies, "the consumer", "consumer")
            row = _paced(bench, chain, "end_to_end", "POST to log line", bench.options.seconds)
        bench.report.rows.append(row)


def measure_zones(bench: Bench) -> None:
    """The producer, the zone processor and a reader of its output on fresh topics; events with
    one Zone5 reading each, paced for --memory-seconds, the zone processor's RSS sampled."""
    if not bench.wants("end_to_end_zones"):
        return
    with _zone_chain(bench) as chain:
        template = bench.files.zone_template.read_bytes().strip()
        placeholder = PLACEHOLDER_DEVICE_ID.encode()
        bodies = (
            template.replace(placeholder, str(uuid.uuid4()).encode()) for _ in itertools.count()
        )
        _post_until(chain, bodies, "the reader of the zone events", "zones")
        what = "POST to committed zone event"
        row = _paced(bench, chain, "end_to_end_zones", what, bench.options.memory_seconds, "zones")
        if bench.options.profile:
            rate = row.details["rate"]
            load = Load(bench.files.zone_template, E2E_CONNECTIONS, bench.options.seconds)
            sent = bench.directory / "e2e-zones-profiled.tsv"
            profile_under(
                bench, "zone processor", chain.processes["zones"].pid,
                f"one Zone5 reading per event at {rate:.0f}/s, under py-spy",
                lambda: run_paced_wrk(bench, chain.url, load, rate, sent).succeeded_per_s,
            )  # fmt: skip
    bench.report.rows.append(row)


def _paced(
    bench: Bench, chain: _Chain, name: str, what: str, seconds: float, rss_of: str = ""
) -> Row:
    """Pace the load for `seconds` (after as much unmeasured when rss_of names a process whose
    RSS is sampled, so that it starts from buffers sized for it); a row of the latencies of what
    arrived, and of what was sent but never did."""
    rate, basis = _rate(bench)
    say(f"{name}: {rate:.0f} events/s ({basis}) for {seconds:g} s")
    template = bench.files.zone_template if rss_of else bench.files.template
    if rss_of and bench.options.warmup_seconds > 0:
        warmup = Load(template, E2E_CONNECTIONS, bench.options.warmup_seconds)
        run_paced_wrk(bench, chain.url, warmup, rate, bench.directory / f"{name}-warm.tsv")
    sent_file = bench.directory / f"{name}-sent.tsv"
    pids = bench.cpu_pids(**{process: p.pid for process, p in chain.processes.items()})
    sampling: AbstractContextManager[list[tuple[float, int]]] = nullcontext([])
    if rss_of:
        sampling = rss_sampler(chain.processes[rss_of].pid)
    with cpu_meter(pids) as cpu, sampling as samples:
        load = Load(template, E2E_CONNECTIONS, seconds)
        result = run_paced_wrk(bench, chain.url, load, rate, sent_file)
    sent = dict(_read_sent(sent_file))
    deadline = time.monotonic() + _CATCH_UP_S  # for the last ones to arrive
    while (
        not sent.keys() <= (seen := chain.arrivals.times()).keys() and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    latencies = [(seen[key] - at) * 1000 for key, at in sent.items() if key in seen]
    p50_ms, p99_ms = _p50_p99(latencies)
    missing = len(sent) - len(latencies)
    return Row(
        name,
        f"end to end{', zones' if rss_of else ''}: {what} at {rate:.0f}/s",
        len(latencies),
        result.seconds,
        p50_ms=p50_ms,
        p99_ms=p99_ms,
        errors=max(result.errors, missing),
        cpu=cpu.shares(wrk=result.cpu_percent),
        details={
            "rate": rate,
            "rate_basis": basis,
            "achieved_rate": result.requests / result.seconds,
            "connections": E2E_CONNECTIONS,
            "sent": len(sent),
            "missing_zone_events" if rss_of else "missing_in_log": missing,
            "max_ms": max(latencies, default=0.0),
            "http_p50_ms": result.p50_ms,
            "http_p99_ms": result.p99_ms,
            **(rss_summary(f"{rss_of}_rss", samples) if rss_of else {}),
        },
    )


def _rate(bench: Bench) -> tuple[float, str]:
    if bench.options.e2e_rate:
        return bench.options.e2e_rate, "--e2e-rate"
    singles = [row for row in bench.report.rows if row.name.startswith("single_c")]
    if not singles:
        return DEFAULT_RATE, "default: no single-event row ran"
    best = max(singles, key=lambda row: row.events_per_s)
    return best.events_per_s / 2, f"half of {best.name}'s {best.events_per_s:.0f}/s"


@contextmanager
def _pair(bench: Bench) -> Iterator[_Chain]:
    """The producer on the service core, the consumer beside wrk, on one fresh topic."""
    topic = bench.create_topic("e2e")
    probe_port = free_port()
    consumer_env = bench.env(topic, group=bench.group("e2e"))
    consumer_env["BIOMETRICS_CONSUMER__PROBE_PORT"] = str(probe_port)
    others = {"consumer": (python_module("consumer_service"), consumer_env)}
    with _running(bench, "e2e", topic, others) as (url, processes):
        arrivals = Followed(bench.log("e2e-consumer"), consumed_event)
        probes = f"http://127.0.0.1:{probe_port}"
        yield _Chain(url, processes, arrivals, lambda: metric(probes, HANDLED) > 0)


@contextmanager
def _zone_chain(bench: Bench) -> Iterator[_Chain]:
    """The producer on the service core; the zone processor and the reader of its output beside
    wrk, as the consumer of the other end-to-end row."""
    topic, zones_topic = bench.create_topic("e2e-zones"), bench.create_topic("e2e-zones-out")
    zones_env = {
        **bench.env(topic),
        "BIOMETRICS_ZONES__TOPIC": zones_topic,
        "BIOMETRICS_ZONES__GROUP_ID": bench.group("e2e-zones"),
        "BIOMETRICS_ZONES__PROBE_PORT": "0",
    }
    arrivals_file = bench.directory / "e2e-zones-arrivals.tsv"
    arrivals_file.touch()
    others = {
        "zones": (python_module("zones_service"), zones_env),
        "reader": (
            python_module("bench.clients", "arrivals", f"--out={arrivals_file}"),
            bench.env(zones_topic),
        ),
    }
    with _running(bench, "e2e-zones", topic, others) as (url, processes):
        arrivals = Followed(arrivals_file, _arrival)
        yield _Chain(url, processes, arrivals, lambda: bool(arrivals.times()))


@contextmanager
def _running(
    bench: Bench, prefix: str, topic: str, others: dict[str, tuple[list[str], dict[str, str]]]
) -> Iterator[tuple[str, dict[str, Popen[bytes]]]]:
    """The producer of the topic on the service core and the others beside wrk, each with a log
    of its own; yield the producer's URL and the processes once it is ready; stop them together
    after."""
    port = free_port()
    started = {
        "producer": (
            python_module("producer_service"),
            bench.pinning.service,
            bench.env(topic, port=port),
        ),
        **{name: (argv, bench.pinning.load, env) for name, (argv, env) in others.items()},
    }
    processes: dict[str, Popen[bytes]] = {}
    try:
        for name, (argv, core, env) in started.items():
            processes[name] = bench.start(argv, core, env, bench.log(f"{prefix}-{name}"))
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(f"{url}/readyz", processes["producer"])
        yield url, processes
    finally:
        bench.processes.stop_together(list(processes.values()))


def _arrival(line: bytes) -> tuple[str, float]:
    """A line of the read_committed reader: the key and when it was first read."""
    key, _, at = line.partition(b"\t")
    return key.decode(), float(at)


def _post_until(chain: _Chain, bodies: Iterator[bytes], far_end: str, watched: str) -> None:
    """POST the bodies one by one until the far end has shown an event (it has joined and
    caught up); RuntimeError if the watched process exits first, or a minute passes."""
    deadline = time.monotonic() + 60
    while not chain.arrived():
        if chain.processes[watched].poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"no warm-up event reached {far_end}; see {chain.arrivals.path}")
        request = urllib.request.Request(
            f"{chain.url}/biometrics",
            data=next(bodies),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10):
            pass
        time.sleep(0.05)


def _read_sent(path: Path) -> Iterator[tuple[str, float]]:
    with path.open() as sent:
        for line in sent:
            device, _, at = line.rstrip("\n").partition("\t")
            yield device, float(at)


def _p50_p99(values: Sequence[float]) -> tuple[float, float]:
    """The median and the 99th percentile of the values (NaN when there are none)."""
    if len(values) < 2:  # quantiles needs two
        return (values[0], values[0]) if values else (math.nan, math.nan)
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[98]
