"""The end-to-end rows, events POSTed by wrk at a fixed rate (half the best single-event
throughput of this run): to the consumer's log line for each, and through the zone processor, to
its HeartRateZoneReached visible to a read_committed reader, with the zone processor's RSS."""

from __future__ import annotations

import itertools
import math
import statistics
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench.consumption import EventLog
from bench.context import PLACEHOLDER_DEVICE_ID, Bench, say
from bench.http_load import Load, WrkResult, run_paced_wrk
from bench.processes import cpu_meter, python_module, rss_sampler, wait_until_serving
from bench.profiler import start_recording, top_frames
from bench.report import Row
from devtools.processes import free_port

DEFAULT_RATE = 500.0
# Enough free connections that the schedule, not the answers, sets when requests leave.
E2E_CONNECTIONS = 256
_CATCH_UP_S = 30.0


def measure(bench: Bench) -> None:
    """Run the producer and the consumer on a fresh topic, pace the load, join the two logs."""
    if not bench.wants("end_to_end"):
        return
    rate, basis = _rate(bench)
    say(f"end to end: {rate:.0f} events/s ({basis}) for {bench.options.seconds:g} s")
    with _pair(bench) as (url, producer, consumer, events):
        _warm_up(url, bench, consumer, events)
        sent_file = bench.directory / "e2e-sent.tsv"
        pids = bench.cpu_pids(producer=producer.pid, consumer=consumer.pid)
        with cpu_meter(pids) as cpu:
            load = Load("/biometrics", bench.files.template, E2E_CONNECTIONS, bench.options.seconds)
            result = run_paced_wrk(bench.processes, url, load, rate, sent_file)
        sent, latencies = _latencies(sent_file, events.times)
    label = f"end to end: POST to log line at {rate:.0f}/s"
    row = _paced_row("end_to_end", label, (rate, basis), result, sent, latencies, "missing_in_log")
    row.cpu = cpu.shares(wrk=result.cpu_percent)
    row.details.update(http_p50_ms=result.p50_ms, http_p99_ms=result.p99_ms)
    bench.report.rows.append(row)


def measure_zones(bench: Bench) -> None:
    """Run the producer, the zone processor and a read_committed reader of its output on fresh
    topics; pace events with one Zone5 reading each for --memory-seconds, sampling the zone
    processor's RSS; join the send times with the times the zone events became visible."""
    if not bench.wants("end_to_end_zones"):
        return
    rate, basis = _rate(bench)
    seconds = bench.options.memory_seconds
    say(f"end to end through the zones: {rate:.0f} events/s ({basis}) for {seconds:g} s")
    with _zone_chain(bench) as (url, producer, zones, reader, arrivals):
        _warm_up_zones(url, bench, zones, arrivals)
        if bench.options.warmup_seconds > 0:
            # Paced load unmeasured first, so the RSS starts from buffers sized for it.
            warmup = Load(
                "/biometrics", bench.files.zone_template, E2E_CONNECTIONS,
                bench.options.warmup_seconds,
            )  # fmt: skip
            run_paced_wrk(
                bench.processes, url, warmup, rate, bench.directory / "e2e-zones-warm.tsv"
            )
        sent_file = bench.directory / "e2e-zones-sent.tsv"
        pids = bench.cpu_pids(producer=producer.pid, zones=zones.pid, reader=reader.pid)
        with cpu_meter(pids) as cpu, rss_sampler(zones.pid) as samples:
            load = Load("/biometrics", bench.files.zone_template, E2E_CONNECTIONS, seconds)
            result = run_paced_wrk(bench.processes, url, load, rate, sent_file)
        sent, latencies = _latencies(sent_file, arrivals.times)
        if bench.options.profile:
            _profile_zones(bench, url, zones, rate)
    label = f"end to end, zones: POST to committed zone event at {rate:.0f}/s"
    missing_as = "missing_zone_events"
    row = _paced_row("end_to_end_zones", label, (rate, basis), result, sent, latencies, missing_as)
    row.cpu = cpu.shares(wrk=result.cpu_percent)
    mib = [value / 2**20 for _, value in samples]
    row.details.update(
        zones_rss_start_mb=round(mib[0], 1) if mib else None,
        zones_rss_max_mb=round(max(mib), 1) if mib else None,
        zones_rss_end_mb=round(mib[-1], 1) if mib else None,
        zones_rss_samples=samples,
    )
    bench.report.rows.append(row)


def _profile_zones(bench: Bench, url: str, zones: subprocess.Popen[bytes], rate: float) -> None:
    """The zone processor under py-spy, at the row's rate, after the measured load (py-spy's
    sampling shares the core the row measures on)."""
    say(f"profiling the zone processor (py-spy) at {rate:.0f} events/s")
    output = bench.directory / "profile-zones.txt"
    recording = start_recording(bench.processes, zones.pid, output)
    recording.wait_until_sampling()
    load = Load("/biometrics", bench.files.zone_template, E2E_CONNECTIONS, bench.options.seconds)
    result = run_paced_wrk(
        bench.processes, url, load, rate, bench.directory / "e2e-zones-profiled.tsv"
    )
    recording.stop(bench.processes)
    bench.report.profiles["zone processor"] = {
        "file": str(output),
        "load": f"one Zone5 reading per event at {rate:.0f}/s, under py-spy",
        "events_per_s": result.succeeded / result.seconds,
        **top_frames(output),
    }


def _paced_row(
    name: str,
    label: str,
    rate: tuple[float, str],
    result: WrkResult,
    sent: int,
    latencies: list[float],
    missing_as: str,
) -> Row:
    """A row of paced load: the latencies of what arrived; what was sent but never did, under
    `missing_as` in the details."""
    missing = sent - len(latencies)
    p50_ms, p99_ms = _p50_p99(latencies)
    return Row(
        name,
        label,
        len(latencies),
        result.seconds,
        p50_ms=p50_ms,
        p99_ms=p99_ms,
        errors=max(result.errors, missing),
        details={
            "rate": rate[0],
            "rate_basis": rate[1],
            "achieved_rate": result.requests / result.seconds,
            "connections": E2E_CONNECTIONS,
            "sent": sent,
            missing_as: missing,
            "max_ms": max(latencies, default=0.0),
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
def _pair(
    bench: Bench,
) -> Iterator[tuple[str, subprocess.Popen[bytes], subprocess.Popen[bytes], EventLog]]:
    """The producer on the service core, the consumer beside wrk, on one fresh topic."""
    topic = bench.create_topic("e2e")
    port = free_port()
    pinning = bench.processes.pinning
    log = bench.log("e2e-consumer")
    with bench.log("e2e-producer").open("wb") as producer_log, log.open("wb") as consumer_log:
        producer = bench.processes.start(
            python_module("producer_service"), pinning.service,
            env=bench.env(topic, port=port), stdout=producer_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        consumer = bench.processes.start(
            python_module("consumer_service"), pinning.load,
            env=bench.env(topic, group=bench.group("e2e")), stdout=consumer_log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_serving(f"{url}/readyz", producer)
            yield url, producer, consumer, EventLog(log)
        finally:
            bench.processes.stop_together([producer, consumer])


class Arrivals:
    """The read_committed reader's file, followed as it grows: each key and when it was seen."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._seen: dict[str, float] = {}

    def times(self) -> dict[str, float]:
        """Each key read so far and the wall-clock time it was first read."""
        with self.path.open("rb") as file:
            file.seek(self._offset)
            complete = file.read().rpartition(b"\n")[0]
        if complete:
            self._offset += len(complete) + 1
            for line in complete.decode().split("\n"):
                key, _, at = line.partition("\t")
                self._seen.setdefault(key, float(at))
        return self._seen


@contextmanager
def _zone_chain(
    bench: Bench,
) -> Iterator[
    tuple[str, subprocess.Popen[bytes], subprocess.Popen[bytes], subprocess.Popen[bytes], Arrivals]
]:
    """The producer on the service core; the zone processor and the reader of its output beside
    wrk, as the consumer of the other end-to-end row."""
    topic = bench.create_topic("e2e-zones")
    zones_topic = bench.create_topic("e2e-zones-out")
    port = free_port()
    load_core = bench.processes.pinning.load
    zones_env = {
        **bench.env(topic),
        "BIOMETRICS_ZONES__TOPIC": zones_topic,
        "BIOMETRICS_ZONES__GROUP_ID": bench.group("e2e-zones"),
        "BIOMETRICS_ZONES__PROBE_PORT": "0",
    }
    arrivals = bench.directory / "e2e-zones-arrivals.tsv"
    arrivals.touch()
    with ExitStack() as stack:
        logs = {
            name: stack.enter_context(bench.log(f"e2e-zones-{name}").open("wb"))
            for name in ("producer", "zones", "reader")
        }
        started = [
            (python_module("producer_service"), bench.processes.pinning.service,
             bench.env(topic, port=port), logs["producer"]),
            (python_module("zones_service"), load_core, zones_env, logs["zones"]),
            (python_module("bench.clients", "arrivals", f"--out={arrivals}"), load_core,
             bench.env(zones_topic), logs["reader"]),
        ]  # fmt: skip
        processes = []
        try:
            for argv, core, env, log in started:
                processes.append(
                    bench.processes.start(argv, core, env=env, stdout=log, stderr=subprocess.STDOUT)
                )
            url = f"http://127.0.0.1:{port}"
            wait_until_serving(f"{url}/readyz", processes[0])
            yield url, processes[0], processes[1], processes[2], Arrivals(arrivals)
        finally:
            bench.processes.stop_together(processes)


def _warm_up_zones(
    url: str, bench: Bench, zones: subprocess.Popen[bytes], arrivals: Arrivals
) -> None:
    """POST Zone5 events until the reader has seen a zone event: the zone processor has joined
    its group and the reader is at the end of the output."""
    template = bench.files.zone_template.read_bytes().strip()
    placeholder = PLACEHOLDER_DEVICE_ID.encode()
    bodies = (template.replace(placeholder, str(uuid.uuid4()).encode()) for _ in itertools.count())
    failure = f"no zone event reached the reader; see {arrivals.path}"
    _post_until(url, bodies, lambda: bool(arrivals.times()), zones, failure)


def _warm_up(url: str, bench: Bench, consumer: subprocess.Popen[bytes], events: EventLog) -> None:
    """POST events until the consumer has logged one: it has joined and caught up."""
    bodies = itertools.cycle(bench.files.bodies.read_bytes().splitlines())
    failure = f"the consumer logged no warm-up event; see {events.path}"
    _post_until(url, bodies, lambda: events.count() > 0, consumer, failure)


def _post_until(
    url: str,
    bodies: Iterator[bytes],
    done: Callable[[], bool],
    process: subprocess.Popen[bytes],
    failure: str,
) -> None:
    """POST the bodies one by one until `done`; RuntimeError(failure) if the process that should
    show it exits first, or a minute passes."""
    deadline = time.monotonic() + 60
    while not done():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(failure)
        request = urllib.request.Request(
            f"{url}/biometrics", data=next(bodies), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10):
            pass
        time.sleep(0.05)


def _latencies(sent_file: Path, times: Callable[[], dict[str, float]]) -> tuple[int, list[float]]:
    """How many requests wrk sent, and the ms from each one's sending to its time in `times`
    (each device's), waiting up to _CATCH_UP_S for the last ones to appear."""
    sent = dict(_read_sent(sent_file))
    deadline = time.monotonic() + _CATCH_UP_S
    while not sent.keys() <= (seen := times()).keys() and time.monotonic() < deadline:
        time.sleep(0.1)
    return len(sent), [(seen[key] - at) * 1000 for key, at in sent.items() if key in seen]


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
