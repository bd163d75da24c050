"""The HTTP rows, under wrk: the baseline (at c64 and c1), the HTTP ceiling, POST /biometrics at
each concurrency, the batch endpoint (in rounds), then the producer's RSS under sustained load and
its profile; and run_wrk, run_paced_wrk: HTTP load from wrk with the bench's Lua script, parsed."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.context import Bench, say
from bench.processes import Processes, cpu_meter, python_module, rss_sampler, wait_until_serving
from bench.profiler import start_recording, top_frames
from bench.report import Row
from devtools.local_registry import LocalRegistry
from devtools.processes import free_port

SINGLE_CONCURRENCIES = (1, 16, 64, 256)
REFERENCE_CONCURRENCY = 64
MEMORY_CONCURRENCY = 64
_WARMUP_CONCURRENCY = 16
# A variant row alternates with the c64 load in this many slices of each (fewer in short runs:
# a slice lasts at least 2 s).
_PAIRED_SLICES = 5
_SCRIPT = Path(__file__).with_name("wrk.lua")
_MARKER = "WRK_RESULT "


_PRODUCER_ROWS = (*(f"single_c{c}" for c in SINGLE_CONCURRENCIES), "batch")
_REGISTRY_ROW = "single_c64_registry"
_LIMITED_ROW = "single_c64_limited"
_KEYED_ROW = "single_c64_keyed"
# The c64 row again with one thing on: its service, what the label says, whether keyed.
_VARIANT_ROWS = {
    _REGISTRY_ROW: ("producer_registry", "Schema Registry on", False),
    _LIMITED_ROW: ("producer_limited", "device limits on", False),
    # A process of its own: the answers it remembers must not weigh on the plain c64 load.
    _KEYED_ROW: ("producer_keyed", "an Idempotency-Key each", True),
}
# Device limits on, high enough that no request is refused: what the buckets cost.
_LIMITED_ENV = {
    "BIOMETRICS_HTTP__DEVICE_RATE_PER_S": "1000000",
    "BIOMETRICS_HTTP__DEVICE_BURST": "1000000",
}
# Each reference row: the service it loads, and on how many connections.
_REFERENCE_ROWS = {
    "baseline": ("baseline", REFERENCE_CONCURRENCY),
    "baseline_c1": ("baseline", 1),
    "http_ceiling": ("http_ceiling", REFERENCE_CONCURRENCY),
}
_HTTP_ROWS = (*_REFERENCE_ROWS, *_PRODUCER_ROWS, _REGISTRY_ROW, _LIMITED_ROW, _KEYED_ROW, "memory")
_LABELS = {
    "baseline": "baseline: send_and_wait, linger 0",
    "http_ceiling": "HTTP ceiling: no-op endpoint",
}


@dataclass(frozen=True)
class Load:
    """What wrk sends: which bodies to which path, on how many connections, for how long."""

    path: str
    bodies: Path
    connections: int
    seconds: float
    events_per_request: int = 1
    keyed: bool = False  # each request with an Idempotency-Key of its own


Services = dict[str, tuple[str, subprocess.Popen[bytes]]]


@contextmanager
def serving(bench: Bench) -> Iterator[Services]:
    """Start (and warm up) every service the chosen HTTP rows need, all on the service core, so
    that rounds can interleave them; stop them all after."""
    wanted = [row for row in bench.options.rows if row in _HTTP_ROWS]
    if shutil.which("wrk") is None:
        for row in wanted:
            bench.report.skipped[row] = "wrk is not installed (apt-get install wrk)"
        yield {}
        return
    commands = {
        "baseline": python_module("bench.reference_apps", "baseline"),
        "http_ceiling": python_module("bench.reference_apps", "noop"),
        "producer": python_module("producer_service"),
        "producer_registry": python_module("producer_service"),
        "producer_limited": python_module("producer_service"),
        "producer_keyed": python_module("producer_service"),
    }
    needed = list(
        dict.fromkeys(_REFERENCE_ROWS[row][0] for row in wanted if row in _REFERENCE_ROWS)
    )
    if bench.wants(*_PRODUCER_ROWS, *_VARIANT_ROWS, "memory") or bench.options.profile:
        needed.append("producer")
    with ExitStack() as stack:
        extra: dict[str, dict[str, str]] = {"producer_limited": _LIMITED_ENV}
        if bench.wants(_LIMITED_ROW):
            needed.append("producer_limited")
        if bench.wants(_KEYED_ROW):
            needed.append("producer_keyed")
        if bench.wants(_REGISTRY_ROW):
            registry_url = bench.options.schema_registry_url
            if registry_url is None:
                say("starting a local Schema Registry for the registry row")
                registry_url = stack.enter_context(LocalRegistry()).url
            extra["producer_registry"] = {"BIOMETRICS_SCHEMA_REGISTRY__URL": registry_url}
            needed.append("producer_registry")
        services = stack.enter_context(
            _serving(bench, {name: commands[name] for name in needed}, extra)
        )
        for url, _ in services.values():
            _warm_up(bench, url)
        yield services


def measure(bench: Bench, services: Services) -> None:
    """One round of the throughput rows: the baseline (c64, c1), the HTTP ceiling, each
    concurrency of POST /biometrics and the batch endpoint."""
    seconds = bench.options.seconds
    for row, (service, connections) in _REFERENCE_ROWS.items():
        if service in services and bench.wants(row):
            label = f"{_LABELS[service]}, c{connections}"
            say(label)
            load = Load("/biometrics", bench.files.bodies, connections, seconds)
            bench.report.rows.append(_measure(bench, row, label, *services[service], load))
    for concurrency in SINGLE_CONCURRENCIES:
        if "producer" in services and bench.wants(name := f"single_c{concurrency}"):
            label = f"POST /biometrics, c{concurrency}"
            say(label)
            load = Load("/biometrics", bench.files.bodies, concurrency, seconds)
            bench.report.rows.append(_measure(bench, name, label, *services["producer"], load))
    # Each against the c64 row, in slices that alternate with it on the same broker.
    for row, (service, what, keyed) in _VARIANT_ROWS.items():
        if service in services and "producer" in services and bench.wants(row):
            label = f"POST /biometrics, c{REFERENCE_CONCURRENCY}, {what}"
            say(label)
            bench.report.rows.append(_paired(bench, row, label, services, service, keyed))
    if "producer" in services and bench.wants("batch"):
        per, concurrency = bench.options.events_per_batch, bench.options.batch_concurrency
        label = f"POST /biometrics/batch ({per}/request), c{concurrency}"
        say(label)
        load = Load("/biometrics/batch", bench.files.batches, concurrency, seconds, per)
        bench.report.rows.append(_measure(bench, "batch", label, *services["producer"], load))


def measure_sustained(bench: Bench, services: Services) -> None:
    """After the rounds: the producer's RSS under a long load, then its profile."""
    if "producer" not in services:
        return
    url, service = services["producer"]
    if bench.wants("memory"):
        bench.report.rows.append(_memory(bench, url, service))
    if bench.options.profile:
        _profile(bench, url, service)


def _memory(bench: Bench, url: str, service: subprocess.Popen[bytes]) -> Row:
    seconds = bench.options.memory_seconds
    label = f"memory: POST /biometrics, c{MEMORY_CONCURRENCY}, {seconds:g} s"
    say(label)
    load = Load("/biometrics", bench.files.bodies, MEMORY_CONCURRENCY, seconds)
    with rss_sampler(service.pid) as samples:
        row = _measure(bench, "memory", label, url, service, load)
    mib = [value / 2**20 for _, value in samples]
    row.details.update(
        rss_start_mb=round(mib[0], 1),
        rss_max_mb=round(max(mib), 1),
        rss_end_mb=round(mib[-1], 1),
        rss_samples=samples,
    )
    return row


def _profile(bench: Bench, url: str, service: subprocess.Popen[bytes]) -> None:
    say(f"profiling the producer (py-spy) under POST /biometrics, c{REFERENCE_CONCURRENCY}")
    output = bench.directory / "profile-producer.txt"
    recording = start_recording(bench.processes, service.pid, output)
    recording.wait_until_sampling()
    load = Load("/biometrics", bench.files.bodies, REFERENCE_CONCURRENCY, bench.options.seconds)
    result = run_wrk(bench.processes, url, load)
    recording.stop(bench.processes)
    bench.report.profiles["producer"] = {
        "file": str(output),
        "load": f"POST /biometrics, c{REFERENCE_CONCURRENCY}, under py-spy",
        "events_per_s": result.succeeded / result.seconds,
        **top_frames(output),
    }


@contextmanager
def _serving(
    bench: Bench,
    commands: Mapping[str, Sequence[str]],
    extra_env: Mapping[str, Mapping[str, str]],
) -> Iterator[Services]:
    """Start each service on the service core with a fresh topic (and its extra environment, if
    any), all before waiting for any, so that their start-ups overlap; yield them once each
    answers; stop them (SIGTERM) together after."""
    services: Services = {}
    try:
        for name, argv in commands.items():
            topic = bench.create_topic(name)
            port = free_port()
            with bench.log(name).open("wb") as log:
                service = bench.processes.start(
                    argv,
                    bench.processes.pinning.service,
                    env=bench.env(topic, port=port) | dict(extra_env.get(name, {})),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            services[name] = (f"http://127.0.0.1:{port}", service)
        for url, service in services.values():
            wait_until_serving(f"{url}/readyz", service)
        yield services
    finally:
        codes = bench.processes.stop_together([service for _, service in services.values()])
    for name, code in zip(services, codes, strict=True):
        if code != 0:
            raise RuntimeError(f"{name} exited with {code} after SIGTERM; see {bench.log(name)}")


def _warm_up(bench: Bench, url: str) -> None:
    """Unmeasured load first, so connections, batches and caches are warm."""
    if bench.options.warmup_seconds > 0:
        load = Load(
            "/biometrics", bench.files.bodies, _WARMUP_CONCURRENCY, bench.options.warmup_seconds
        )
        run_wrk(bench.processes, url, load)


def _paired(
    bench: Bench, name: str, label: str, services: Services, service: str, keyed: bool
) -> Row:
    """A variant row (the c64 load with one thing on), measured in slices that alternate with the
    same load on the producer without it, so that a busy spell of the shared machine slows both
    sides of their ratio alike: the row is its slices together, and its details hold the
    slices without it ("paired")."""
    count = max(1, min(_PAIRED_SLICES, int(bench.options.seconds // 2)))
    seconds = bench.options.seconds / count
    plain = Load("/biometrics", bench.files.bodies, REFERENCE_CONCURRENCY, seconds)
    variant = Load(plain.path, plain.bodies, plain.connections, seconds, keyed=keyed)
    bases, slices = [], []
    for _ in range(count):
        bases.append(_measure(bench, "single_c64", "", *services["producer"], plain))
        slices.append(_measure(bench, name, label, *services[service], variant))
    row = _together(name, label, slices)
    base = _together("single_c64", "", bases)
    row.details["paired"] = {
        "row": base.name,
        "events": base.events,
        "seconds": base.seconds,
        "events_per_s": base.events_per_s,
    }
    return row


def _together(name: str, label: str, slices: Sequence[Row]) -> Row:
    """Slices of one load as one row: events and seconds summed, CPU shares weighted by time,
    p50 and p90 the slices' median, p99 and max the slices' highest."""
    seconds = sum(row.seconds for row in slices)
    cpu = {
        process: round(sum(row.cpu.get(process, 0.0) * row.seconds for row in slices) / seconds, 1)
        for process in slices[0].cpu
    }

    def middle(values: Sequence[float | None]) -> float | None:
        known = [value for value in values if value is not None]
        return statistics.median(known) if known else None

    return Row(
        name,
        label,
        sum(row.events for row in slices),
        seconds,
        p50_ms=middle([row.p50_ms for row in slices]),
        p99_ms=max((row.p99_ms for row in slices if row.p99_ms is not None), default=None),
        errors=sum(row.errors or 0 for row in slices),
        cpu=cpu,
        details={
            "connections": slices[0].details["connections"],
            "requests": sum(row.details["requests"] for row in slices),
            "events_per_request": slices[0].details["events_per_request"],
            "p90_ms": middle([row.details["p90_ms"] for row in slices]),
            "max_ms": max(row.details["max_ms"] for row in slices),
            "slices": len(slices),
        },
    )


def _measure(
    bench: Bench, name: str, label: str, url: str, service: subprocess.Popen[bytes], load: Load
) -> Row:
    with cpu_meter(bench.cpu_pids(service=service.pid)) as cpu:
        result = run_wrk(bench.processes, url, load)
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


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed no summary."""


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured; latencies in milliseconds."""

    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    cpu_percent: float

    @property
    def succeeded(self) -> int:
        """Requests answered with a status below 400."""
        return max(self.requests - self.errors, 0)


def run_wrk(processes: Processes, url: str, load: Load) -> WrkResult:
    """POST the bodies in turn on `connections` keep-alive connections for `seconds`."""
    mode = "keyed" if load.keyed else "cycle"
    return _run(processes, url, load, [mode, load.path, str(load.bodies)])


def run_paced_wrk(processes: Processes, url: str, load: Load, rate: float, sent: Path) -> WrkResult:
    """POST `rate` events a second, each the template (load.bodies) with its own device id,
    recording each one's wall-clock send time in `sent` (device id<TAB>seconds since the epoch)."""
    prefix = str(uuid.uuid4())[:23]  # the first four groups; wrk appends 12 hex digits
    args = ["paced", load.path, str(load.bodies), str(sent), f"{rate:.3f}", prefix]
    return _run(processes, url, load, args)


def _run(processes: Processes, url: str, load: Load, script_args: list[str]) -> WrkResult:
    if shutil.which("wrk") is None:
        raise WrkError("wrk is not installed (apt-get install wrk)")
    duration = f"-d{max(round(load.seconds), 1)}s"
    # wrk's -d counts whole seconds: a shorter load stops at its first response after its time.
    stop = [f"--stop-after={load.seconds}"] if load.seconds < 1 else []
    argv = [
        *("wrk", "-t1", f"-c{load.connections}", duration, "--timeout", "10s"),
        *("-s", str(_SCRIPT), url, "--", *stop, *script_args),
    ]
    with tempfile.TemporaryFile() as out:
        process = processes.start(
            argv, processes.pinning.load, stdout=out, stderr=subprocess.STDOUT
        )
        code, cpu_s = processes.wait_measured(process, timeout_s=load.seconds + 60)
        out.seek(0)
        output = out.read().decode()
    lines = [line for line in output.splitlines() if line.startswith(_MARKER)]
    if code != 0 or not lines:
        raise WrkError(f"wrk exited with {code}, printed no summary or both:\n{output}")
    summary = json.loads(lines[-1].removeprefix(_MARKER))
    seconds_run = summary["duration_us"] / 1e6
    errors = sum(summary[kind] for kind in ("connect", "read", "write", "status", "timeout"))
    return WrkResult(
        requests=summary["requests"],
        seconds=seconds_run,
        errors=errors,
        p50_ms=summary["p50_us"] / 1000,
        p90_ms=summary["p90_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        max_ms=summary["max_us"] / 1000,
        cpu_percent=round(100 * cpu_s / max(seconds_run, 1e-9), 1),
    )
