"""The HTTP rows, under wrk: the baseline, the HTTP ceiling, POST /biometrics at each
concurrency, the batch endpoint, the producer's RSS under sustained load, and its profile."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.context import Bench, say
from bench.meter import CpuMeter, RssSampler
from bench.process import free_port, python_module, wait_until_serving
from bench.profiler import start_recording, top_frames
from bench.results import Row
from bench.topics import create_topic
from bench.wrk import WrkResult, run_wrk, wrk_available

SINGLE_CONCURRENCIES = (1, 16, 64, 256)
REFERENCE_CONCURRENCY = 64
MEMORY_CONCURRENCY = 64
_WARMUP_CONCURRENCY = 16


def measure(bench: Bench) -> None:
    """Every chosen HTTP row; each service is started for its rows and stopped after them."""
    wanted = [row for row in bench.options.rows if row in _HTTP_ROWS]
    if not (wanted or bench.options.profile):
        return
    if not wrk_available():
        for row in wanted:
            bench.report.skipped[row] = "wrk is not installed (apt-get install wrk)"
        return
    if bench.wants("baseline"):
        bench.report.rows.append(_reference(bench, "baseline"))
    if bench.wants("http_ceiling"):
        bench.report.rows.append(_reference(bench, "http_ceiling"))
    if bench.wants(*_PRODUCER_ROWS) or bench.options.profile:
        _producer_rows(bench)


_PRODUCER_ROWS = (*(f"single_c{c}" for c in SINGLE_CONCURRENCIES), "batch", "memory")
_HTTP_ROWS = ("baseline", "http_ceiling", *_PRODUCER_ROWS)


@dataclass(frozen=True)
class _Load:
    """What wrk sends: which bodies to which path, on how many connections, for how long."""

    path: str
    bodies: Path
    connections: int
    seconds: float
    events_per_request: int = 1


def _reference(bench: Bench, row: str) -> Row:
    app, label = {
        "baseline": ("baseline", "baseline: send_and_wait, linger 0"),
        "http_ceiling": ("noop", "HTTP ceiling: no-op endpoint"),
    }[row]
    say(f"{row}: {label}, c{REFERENCE_CONCURRENCY}")
    argv = python_module("bench.reference_apps", app)
    with _serving(bench, row, argv) as (url, service):
        _warm_up(bench, url)
        load = _Load(
            "/biometrics", bench.files.bodies, REFERENCE_CONCURRENCY, bench.options.seconds
        )
        return _measure(bench, row, f"{label}, c{REFERENCE_CONCURRENCY}", url, service, load)


def _producer_rows(bench: Bench) -> None:
    options = bench.options
    with _serving(bench, "producer", python_module("producer_service")) as (url, service):
        _warm_up(bench, url)
        for concurrency in SINGLE_CONCURRENCIES:
            if bench.wants(name := f"single_c{concurrency}"):
                label = f"POST /biometrics, c{concurrency}"
                say(label)
                load = _Load("/biometrics", bench.files.bodies, concurrency, options.seconds)
                bench.report.rows.append(_measure(bench, name, label, url, service, load))
        if bench.wants("batch"):
            per, concurrency = options.events_per_batch, options.batch_concurrency
            label = f"POST /biometrics/batch ({per}/request), c{concurrency}"
            say(label)
            load = _Load(
                "/biometrics/batch", bench.files.batches, concurrency, options.seconds, per
            )
            bench.report.rows.append(_measure(bench, "batch", label, url, service, load))
        if bench.wants("memory"):
            bench.report.rows.append(_memory(bench, url, service))
        if options.profile:
            _profile(bench, url, service)


def _memory(bench: Bench, url: str, service: subprocess.Popen[bytes]) -> Row:
    seconds = bench.options.memory_seconds
    label = f"memory: POST /biometrics, c{MEMORY_CONCURRENCY}, {seconds:g} s"
    say(label)
    load = _Load("/biometrics", bench.files.bodies, MEMORY_CONCURRENCY, seconds)
    with RssSampler(service.pid) as rss:
        row = _measure(bench, "memory", label, url, service, load)
    mib = [value / 2**20 for _, value in rss.samples]
    row.details.update(
        rss_start_mb=round(mib[0], 1),
        rss_max_mb=round(max(mib), 1),
        rss_end_mb=round(mib[-1], 1),
        rss_samples=rss.samples,
    )
    return row


def _profile(bench: Bench, url: str, service: subprocess.Popen[bytes]) -> None:
    say(f"profiling the producer (py-spy) under POST /biometrics, c{REFERENCE_CONCURRENCY}")
    output = bench.directory / "profile-producer.txt"
    recording = start_recording(bench.processes, service.pid, output)
    load = _Load("/biometrics", bench.files.bodies, REFERENCE_CONCURRENCY, bench.options.seconds)
    result = _wrk(bench, url, load)
    recording.stop(bench.processes)
    bench.report.profiles["producer"] = {
        "file": str(output),
        "load": f"POST /biometrics, c{REFERENCE_CONCURRENCY}, under py-spy",
        "events_per_s": result.succeeded / result.seconds,
        **top_frames(output),
    }


@contextmanager
def _serving(
    bench: Bench, name: str, argv: Sequence[str]
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Start a service on the service core with a fresh topic; stop it (SIGTERM) after."""
    topic = create_topic(bench.bootstrap, name, bench.settings.kafka.topic_partitions)
    port = free_port()
    with bench.log(name).open("wb") as log:
        service = bench.processes.start(
            argv,
            bench.processes.pinning.service,
            env=bench.env(topic, port=port),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_serving(f"{url}/readyz", service)
            yield url, service
        finally:
            code = bench.processes.stop(service)
    if code != 0:
        raise RuntimeError(f"{name} exited with {code} after SIGTERM; see {bench.log(name)}")


def _warm_up(bench: Bench, url: str) -> None:
    """Unmeasured load first, so connections, batches and caches are warm."""
    if bench.options.warmup_seconds > 0:
        load = _Load(
            "/biometrics", bench.files.bodies, _WARMUP_CONCURRENCY, bench.options.warmup_seconds
        )
        _wrk(bench, url, load)


def _wrk(bench: Bench, url: str, load: _Load) -> WrkResult:
    return run_wrk(bench.processes, url, load.path, load.bodies, load.connections, load.seconds)


def _measure(
    bench: Bench,
    name: str,
    label: str,
    url: str,
    service: subprocess.Popen[bytes],
    load: _Load,
) -> Row:
    with CpuMeter(bench.cpu_pids(service=service.pid)) as cpu:
        result = _wrk(bench, url, load)
    return Row(
        name,
        label,
        result.succeeded * load.events_per_request,
        result.seconds,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        errors=result.errors,
        cpu=cpu.shares(wrk=result.cpu_percent),
        details={
            "connections": load.connections,
            "requests": result.requests,
            "events_per_request": load.events_per_request,
            "p90_ms": result.p90_ms,
            "max_ms": result.max_ms,
        },
    )
