"""The end-to-end rows: paced POSTs to the consumer's line, or to a committed zone event."""

from __future__ import annotations

import math
import statistics
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from subprocess import Popen

from bench.consumption import HANDLED
from bench.context import PLACEHOLDER_DEVICE_ID, Bench, Followed, consumed_event, metric, say
from bench.http_load import Load, run_wrk
from bench.metering import cpu_meter, python_module, rss_sampler, rss_summary
from bench.profiler import profiling
from bench.report import Row
from devtools.processes import free_port, wait_until_serving

DEFAULT_RATE = 500.0
# Enough free connections that the schedule, not the answers, sets when requests leave.
E2E_CONNECTIONS = 256
_CATCH_UP_S = 30.0


@dataclass
class _Chain:
    """A row's running processes, the far end's arrivals and the consumer's probes (if any)."""

    url: str
    processes: dict[str, Popen[bytes]]
    arrivals: Followed
    probes: str | None

    def arrived(self) -> bool:
        """Whether the far end has shown an event yet."""
        if self.probes is not None:
            return metric(self.probes, HANDLED) > 0
        return bool(self.arrivals.times())


def measure(bench: Bench) -> None:
    """The end_to_end and end_to_end_zones rows, each on processes and topics of its own."""
    for zones, name in ((False, "end_to_end"), (True, "end_to_end_zones")):
        if not bench.wants(name):
            continue
        with _chain(bench, zones) as chain:
            _post_until_arrived(bench, chain, zones)
            row = _paced(bench, chain, name, zones)
            if zones and bench.options.profile:
                _profile_zones(bench, chain, row.details["rate"])
        bench.report.rows.append(row)


def _profile_zones(bench: Bench, chain: _Chain, rate: float) -> None:
    sent = bench.directory / "e2e-zones-profiled.tsv"
    load = Load(
        bench.files.zone_template, E2E_CONNECTIONS, bench.options.seconds, rate=rate, sent=sent
    )
    what = f"one Zone5 reading per event at {rate:.0f}/s, under py-spy"
    with profiling(bench, "zone processor", chain.processes["zones"].pid, what) as profile:
        profile["events_per_s"] = run_wrk(bench, chain.url, load).events_per_s


def _paced(bench: Bench, chain: _Chain, name: str, zones: bool) -> Row:
    """Pace the load; a row of the latencies of what arrived, and of what never did."""
    rate, basis = _rate(bench)
    seconds = bench.options.memory_seconds if zones else bench.options.seconds
    say(f"{name}: {rate:.0f} events/s ({basis}) for {seconds:g} s")
    template = bench.files.zone_template if zones else bench.files.template
    load = Load(
        template, E2E_CONNECTIONS, seconds, rate=rate, sent=bench.directory / f"{name}-sent.tsv"
    )
    if zones and bench.options.warmup_seconds > 0:
        warm = bench.directory / f"{name}-warm.tsv"
        run_wrk(bench, chain.url, replace(load, seconds=bench.options.warmup_seconds, sent=warm))
    pids = bench.cpu_pids(**{process: p.pid for process, p in chain.processes.items()})
    sampling: AbstractContextManager[list[tuple[float, int]]] = nullcontext([])
    if zones:
        sampling = rss_sampler(chain.processes["zones"].pid)
    with cpu_meter(pids) as cpu, sampling as samples:
        result = run_wrk(bench, chain.url, load)
    assert load.sent is not None
    sent = Followed(load.sent, _keyed_time).times()
    deadline = time.monotonic() + _CATCH_UP_S  # for the last ones to arrive
    while (
        not sent.keys() <= (seen := chain.arrivals.times()).keys() and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    latencies = [(seen[key] - at) * 1000 for key, at in sent.items() if key in seen]
    p50_ms, p99_ms = _p50_p99(latencies)
    missing = len(sent) - len(latencies)
    what = "zones: POST to committed zone event" if zones else "POST to log line"
    return Row(
        name, f"end to end{',' if zones else ':'} {what} at {rate:.0f}/s", len(latencies),
        result.seconds,
        p50_ms=p50_ms, p99_ms=p99_ms, errors=max(result.errors or 0, missing),
        cpu=cpu.shares(wrk=result.cpu["wrk"]),
        details={
            "rate": rate, "rate_basis": basis,
            "achieved_rate": result.details["requests"] / result.seconds,
            "connections": E2E_CONNECTIONS, "sent": len(sent),
            "missing_zone_events" if zones else "missing_in_log": missing,
            "max_ms": max(latencies, default=0.0),
            "http_p50_ms": result.p50_ms, "http_p99_ms": result.p99_ms,
            **(rss_summary("zones_rss", samples) if zones else {}),
        },
    )  # fmt: skip


def _rate(bench: Bench) -> tuple[float, str]:
    if bench.options.e2e_rate:
        return bench.options.e2e_rate, "--e2e-rate"
    singles = [row for row in bench.report.rows if row.name.startswith("single_c")]
    if not singles:
        return DEFAULT_RATE, "default: no single-event row ran"
    best = max(singles, key=lambda row: row.events_per_s)
    return best.events_per_s / 2, f"half of {best.name}'s {best.events_per_s:.0f}/s"


@contextmanager
def _chain(bench: Bench, zones: bool) -> Iterator[_Chain]:
    """The producer, and beside wrk the consumer or the zone processor and its reader."""
    prefix = "e2e-zones" if zones else "e2e"
    topic, port, probe_port = bench.create_topic(prefix), free_port(), free_port()
    if zones:
        zones_topic = bench.create_topic("e2e-zones-out")
        arrivals = Followed(bench.directory / "e2e-zones-arrivals.tsv", _keyed_time)
        arrivals.path.touch()
        zones_env = bench.env(topic) | {
            "BIOMETRICS_ZONES__TOPIC": zones_topic,
            "BIOMETRICS_ZONES__GROUP_ID": bench.group(prefix),
            "BIOMETRICS_ZONES__PROBE_PORT": "0",
        }
        reader = python_module("bench.clients", "arrivals", f"--out={arrivals.path}")
        others = {
            "zones": (python_module("zones_service"), zones_env),
            "reader": (reader, bench.env(zones_topic)),
        }
    else:
        arrivals = Followed(bench.log(f"{prefix}-consumer"), consumed_event)
        consumer_env = bench.env(topic, group=bench.group(prefix))
        consumer_env["BIOMETRICS_CONSUMER__PROBE_PORT"] = str(probe_port)
        others = {"consumer": (python_module("consumer_service"), consumer_env)}
    producer = bench.start(
        python_module("producer_service"), bench.pinning.service, bench.env(topic, port=port),
        bench.log(f"{prefix}-producer"),
    )  # fmt: skip
    processes = {"producer": producer}
    try:
        for name, (argv, env) in others.items():
            processes[name] = bench.start(
                argv, bench.pinning.load, env, bench.log(f"{prefix}-{name}")
            )
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(f"{url}/readyz", producer)
        yield _Chain(url, processes, arrivals, None if zones else f"http://127.0.0.1:{probe_port}")
    finally:
        bench.processes.stop_together(list(processes.values()))


def _keyed_time(line: bytes) -> tuple[str, float]:
    """A line of wrk's sent file or of the zone reader: key<TAB>seconds since the epoch."""
    key, _, at = line.partition(b"\t")
    return key.decode(), float(at)


def _post_until_arrived(bench: Bench, chain: _Chain, zones: bool) -> None:
    """POST events one by one until the far end has shown one (it has joined and caught up)."""
    template = (bench.files.zone_template if zones else bench.files.template).read_bytes().strip()
    watched = chain.processes["zones" if zones else "consumer"]
    deadline = time.monotonic() + 60
    while not chain.arrived():
        if watched.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"no warm-up event reached the far end; see {chain.arrivals.path}")
        body = template.replace(PLACEHOLDER_DEVICE_ID.encode(), str(uuid.uuid4()).encode())
        request = urllib.request.Request(
            f"{chain.url}/biometrics", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10):
            pass
        time.sleep(0.05)


def _p50_p99(values: Sequence[float]) -> tuple[float, float]:
    """The median and the 99th percentile of the values (NaN when there are none)."""
    if len(values) < 2:  # quantiles needs two
        return (values[0], values[0]) if values else (math.nan, math.nan)
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[98]
