"""The HTTP rows under wrk (the references, POST /biometrics at each concurrency and with one
thing on, the batch endpoint, the producer's RSS and profile), and run_wrk, run_paced_wrk."""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from subprocess import Popen

from bench.context import Bench, say
from bench.metering import cpu_meter, python_module, rss_sampler, rss_summary
from bench.profiler import profile_under
from bench.report import Row
from devtools.local_registry import LocalRegistry
from devtools.processes import free_port, wait_until_serving

SINGLE_CONCURRENCIES = (1, 16, 64, 256)
REFERENCE_CONCURRENCY = 64
_WARMUP_CONCURRENCY = 16
# A variant row alternates with the c64 load in this many slices of each (fewer in short runs:
# a slice lasts at least 2 s).
_PAIRED_SLICES = 5
_SCRIPT = Path(__file__).with_name("wrk.lua")
_MARKER = "WRK_RESULT "
_NO_WRK = "wrk is not installed (apt-get install wrk)"

# Each reference row: its service, its label, and on how many connections.
_REFERENCE_ROWS = {
    "baseline": ("baseline", "baseline: send_and_wait, linger 0", REFERENCE_CONCURRENCY),
    "baseline_c1": ("baseline", "baseline: send_and_wait, linger 0", 1),
    "http_ceiling": ("http_ceiling", "HTTP ceiling: no-op endpoint", REFERENCE_CONCURRENCY),
}
# The c64 row again with one thing on: its service, what the label says, whether keyed. The
# keyed one is a process of its own: the answers it remembers must not weigh on the plain load.
_VARIANT_ROWS = {
    "single_c64_registry": ("producer_registry", "Schema Registry on", False),
    "single_c64_limited": ("producer_limited", "device limits on", False),
    "single_c64_keyed": ("producer_keyed", "an Idempotency-Key each", True),
}
_PRODUCER_ROWS = (*(f"single_c{c}" for c in SINGLE_CONCURRENCIES), "batch", "memory")
# Each service: its command, and what its environment adds. Device limits on, high enough that
# no request is refused: what the buckets cost.
_SERVICES = {
    "baseline": (python_module("bench.reference_apps", "baseline"), {}),
    "http_ceiling": (python_module("bench.reference_apps", "noop"), {}),
    "producer": (python_module("producer_service"), {}),
    "producer_registry": (python_module("producer_service"), {}),
    "producer_keyed": (python_module("producer_service"), {}),
    "producer_limited": (
        python_module("producer_service"),
        {
            "BIOMETRICS_HTTP__DEVICE_RATE_PER_S": "1000000",
            "BIOMETRICS_HTTP__DEVICE_BURST": "1000000",
        },
    ),
}


@dataclass(frozen=True)
class Load:
    """What wrk sends: which bodies to which path, on how many connections, for how long."""

    bodies: Path
    connections: int
    seconds: float
    path: str = "/biometrics"
    events_per_request: int = 1
    keyed: bool = False  # each request with an Idempotency-Key of its own


Services = dict[str, tuple[str, Popen[bytes]]]


@contextmanager
def serving(bench: Bench) -> Iterator[Services]:
    """Start every service the chosen HTTP rows need, each on the service core with a topic of
    its own, all before waiting for any; warm each up; stop them together (SIGTERM) after."""
    wanted = [
        r for r in bench.options.rows if r in (*_REFERENCE_ROWS, *_VARIANT_ROWS, *_PRODUCER_ROWS)
    ]
    if shutil.which("wrk") is None:
        bench.report.skipped.update(dict.fromkeys(wanted, _NO_WRK))
        yield {}
        return
    needed = [_REFERENCE_ROWS[row][0] for row in wanted if row in _REFERENCE_ROWS]
    if bench.wants(*_PRODUCER_ROWS, *_VARIANT_ROWS) or bench.options.profile:
        needed.append("producer")
    needed += [_VARIANT_ROWS[row][0] for row in wanted if row in _VARIANT_ROWS]
    services: Services = {}
    with ExitStack() as stack:
        for name in dict.fromkeys(needed):
            argv, extra = _SERVICES[name]
            if name == "producer_registry":
                extra = {"BIOMETRICS_SCHEMA_REGISTRY__URL": _registry(bench, stack)}
            port = free_port()
            env = bench.env(bench.create_topic(name), port=port) | extra
            process = bench.start(argv, bench.pinning.service, env, bench.log(name))
            services[name] = (f"http://127.0.0.1:{port}", process)
        try:
            for url, process in services.values():
                wait_until_serving(f"{url}/readyz", process)
            warmup = Load(bench.files.bodies, _WARMUP_CONCURRENCY, bench.options.warmup_seconds)
            for url, _ in services.values():  # unmeasured load first: connections, caches warm
                if warmup.seconds > 0:
                    run_wrk(bench, url, warmup)
            yield services
        finally:
            codes = bench.processes.stop_together([process for _, process in services.values()])
    for name, code in zip(services, codes, strict=True):
        if code != 0:
            raise RuntimeError(f"{name} exited with {code} after SIGTERM; see {bench.log(name)}")


def _registry(bench: Bench, stack: ExitStack) -> str:
    if bench.options.schema_registry_url is not None:
        return bench.options.schema_registry_url
    say("starting a local Schema Registry for the registry row")
    return stack.enter_context(LocalRegistry()).url


def measure(bench: Bench, services: Services) -> None:
    """One round of the throughput rows: the references, each concurrency of POST /biometrics,
    each variant (against the c64 row, in slices that alternate with it) and the batch row."""
    seconds, bodies = bench.options.seconds, bench.files.bodies
    for row, (service, what, connections) in _REFERENCE_ROWS.items():
        if service in services and bench.wants(row):
            load = Load(bodies, connections, seconds)
            _append(bench, row, f"{what}, c{connections}", services[service], load)
    if "producer" not in services:
        return
    for concurrency in SINGLE_CONCURRENCIES:
        if bench.wants(row := f"single_c{concurrency}"):
            load = Load(bodies, concurrency, seconds)
            _append(bench, row, f"POST /biometrics, c{concurrency}", services["producer"], load)
    for row, (service, what, keyed) in _VARIANT_ROWS.items():
        if service in services and bench.wants(row):
            label = f"POST /biometrics, c{REFERENCE_CONCURRENCY}, {what}"
            say(label)
            bench.report.rows.append(_paired(bench, row, label, services, service, keyed))
    if bench.wants("batch"):
        per, concurrency = bench.options.events_per_batch, bench.options.batch_concurrency
        load = Load(bench.files.batches, concurrency, seconds, "/biometrics/batch", per)
        label = f"POST /biometrics/batch ({per}/request), c{concurrency}"
        _append(bench, "batch", label, services["producer"], load)


def _append(
    bench: Bench, row: str, label: str, service: tuple[str, Popen[bytes]], load: Load
) -> None:
    say(label)
    bench.report.rows.append(_measure(bench, row, label, *service, load))


def measure_sustained(bench: Bench, services: Services) -> None:
    """After the rounds: the producer's RSS under a long load, then its profile."""
    if "producer" not in services:
        return
    url, service = services["producer"]
    c64 = Load(bench.files.bodies, REFERENCE_CONCURRENCY, bench.options.seconds)
    if bench.wants("memory"):
        seconds = bench.options.memory_seconds
        label = f"memory: POST /biometrics, c{REFERENCE_CONCURRENCY}, {seconds:g} s"
        say(label)
        with rss_sampler(service.pid) as samples:
            row = _measure(bench, "memory", label, url, service, replace(c64, seconds=seconds))
        row.details.update(rss_summary("rss", samples))
        bench.report.rows.append(row)
    if bench.options.profile:
        say(f"profiling the producer (py-spy) under POST /biometrics, c{REFERENCE_CONCURRENCY}")
        what = f"POST /biometrics, c{REFERENCE_CONCURRENCY}, under py-spy"
        profile_under(
            bench, "producer", service.pid, what, lambda: run_wrk(bench, url, c64).succeeded_per_s
        )


def _paired(
    bench: Bench, name: str, label: str, services: Services, service: str, keyed: bool
) -> Row:
    """A variant row measured in slices that alternate with the same load on the producer
    without it, so that a busy spell of the shared machine slows both sides of their ratio
    alike: the row is its slices together; its details hold the slices without it ("paired")."""
    count = max(1, min(_PAIRED_SLICES, int(bench.options.seconds // 2)))
    plain = Load(bench.files.bodies, REFERENCE_CONCURRENCY, bench.options.seconds / count)
    variant = replace(plain, keyed=keyed)
    bases, slices = [], []
    for _ in range(count):
        bases.append(_measure(bench, "single_c64", "", *services["producer"], plain))
        slices.append(_measure(bench, name, label, *services[service], variant))
    row, base = _together(name, label, slices), _together("single_c64", "", bases)
    row.details["paired"] = {
        "row": base.name, "events": base.events, "seconds": base.seconds,
        "events_per_s": base.events_per_s,
    }  # fmt: skip
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

    details = slices[0].details
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
            "connections": details["connections"],
            "requests": sum(row.details["requests"] for row in slices),
            "events_per_request": details["events_per_request"],
            "p90_ms": middle([row.details["p90_ms"] for row in slices]),
            "max_ms": max(row.details["max_ms"] for row in slices),
            "slices": len(slices),
        },
    )


def _measure(
    bench: Bench, name: str, label: str, url: str, service: Popen[bytes], load: Load
) -> Row:
    with cpu_meter(bench.cpu_pids(service=service.pid)) as cpu:
        result = run_wrk(bench, url, load)
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

    @property
    def succeeded_per_s(self) -> float:
        """Requests answered with a status below 400, per second."""
        return self.succeeded / self.seconds


def run_wrk(bench: Bench, url: str, load: Load) -> WrkResult:
    """POST the bodies in turn on `connections` keep-alive connections for `seconds`."""
    mode = "keyed" if load.keyed else "cycle"
    return _run(bench, url, load, [mode, load.path, str(load.bodies)])


def run_paced_wrk(bench: Bench, url: str, load: Load, rate: float, sent: Path) -> WrkResult:
    """POST `rate` events a second, each the template (load.bodies) with its own device id,
    recording each one's wall-clock send time in `sent` (device id<TAB>seconds since the epoch)."""
    prefix = str(uuid.uuid4())[:23]  # the first four groups; wrk appends 12 hex digits
    return _run(
        bench, url, load, ["paced", load.path, str(load.bodies), str(sent), f"{rate:.3f}", prefix]
    )


def _run(bench: Bench, url: str, load: Load, script_args: list[str]) -> WrkResult:
    if shutil.which("wrk") is None:
        raise WrkError(_NO_WRK)
    # wrk's -d counts whole seconds: a shorter load stops at its first response after its time.
    stop = [f"--stop-after={load.seconds}"] if load.seconds < 1 else []
    argv = [
        *("wrk", "-t1", f"-c{load.connections}", f"-d{max(round(load.seconds), 1)}s"),
        *("--timeout", "10s", "-s", str(_SCRIPT), url, "--", *stop, *script_args),
    ]
    with tempfile.TemporaryFile() as out:
        process = bench.processes.start(argv, bench.pinning.load, stdout=out, stderr=out)
        code, cpu_s = bench.processes.wait_measured(process, timeout_s=load.seconds + 60)
        out.seek(0)
        output = out.read().decode()
    lines = [line for line in output.splitlines() if line.startswith(_MARKER)]
    if code != 0 or not lines:
        raise WrkError(f"wrk exited with {code}, printed no summary or both:\n{output}")
    summary = json.loads(lines[-1].removeprefix(_MARKER))
    seconds_run = summary["duration_us"] / 1e6
    return WrkResult(
        requests=summary["requests"],
        seconds=seconds_run,
        errors=sum(summary[kind] for kind in ("connect", "read", "write", "status", "timeout")),
        p50_ms=summary["p50_us"] / 1000,
        p90_ms=summary["p90_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        max_ms=summary["max_us"] / 1000,
        cpu_percent=round(100 * cpu_s / max(seconds_run, 1e-9), 1),
    )
