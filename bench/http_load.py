"""The HTTP rows under wrk, the producer's RSS and profile, and run_wrk."""

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
from bench.profiler import profiling
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
# The reference services' commands; every other service is the producer.
_REFERENCE_APPS = {
    "baseline": python_module("bench.reference_apps", "baseline"),
    "http_ceiling": python_module("bench.reference_apps", "noop"),
}
# Device limits on, high enough that no request is refused: what the buckets cost.
_LIMITED = {
    "BIOMETRICS_HTTP__DEVICE_RATE_PER_S": "1000000",
    "BIOMETRICS_HTTP__DEVICE_BURST": "1000000",
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
    # Paced: `rate` events a second, each the template (bodies) with its own device id, each
    # one's wall-clock send time written to `sent` (device id<TAB>seconds since the epoch).
    rate: float | None = None
    sent: Path | None = None


Service = tuple[str, Popen[bytes]]  # its URL and its process


@contextmanager
def serving(bench: Bench) -> Iterator[dict[str, Service]]:
    """Start and warm up every service the chosen HTTP rows need; stop them together after."""
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
    services: dict[str, Service] = {}
    with ExitStack() as stack:
        for name in dict.fromkeys(needed):
            argv = _REFERENCE_APPS.get(name, python_module("producer_service"))
            extra = _LIMITED if name == "producer_limited" else {}
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


def measure(bench: Bench, services: dict[str, Service]) -> None:
    """One round of the throughput rows: references, concurrencies, variants, batch."""
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


def _append(bench: Bench, row: str, label: str, service: Service, load: Load) -> None:
    say(label)
    bench.report.rows.append(_measure(bench, service, load, row, label))


def measure_sustained(bench: Bench, services: dict[str, Service]) -> None:
    """After the rounds: the producer's RSS under a long load, then its profile."""
    if "producer" not in services:
        return
    url, service = services["producer"]
    c64 = Load(bench.files.bodies, REFERENCE_CONCURRENCY, bench.options.seconds)
    if bench.wants("memory"):
        load = replace(c64, seconds=bench.options.memory_seconds)
        label = f"memory: POST /biometrics, c{REFERENCE_CONCURRENCY}, {load.seconds:g} s"
        say(label)
        with rss_sampler(service.pid) as samples:
            row = _measure(bench, services["producer"], load, "memory", label)
        row.details.update(rss_summary("rss", samples))
        bench.report.rows.append(row)
    if bench.options.profile:
        say(f"profiling the producer (py-spy) under POST /biometrics, c{REFERENCE_CONCURRENCY}")
        what = f"POST /biometrics, c{REFERENCE_CONCURRENCY}, under py-spy"
        with profiling(bench, "producer", service.pid, what) as profile:
            profile["events_per_s"] = run_wrk(bench, url, c64).events_per_s


def _paired(
    bench: Bench, name: str, label: str, services: dict[str, Service], service: str, keyed: bool
) -> Row:
    """A variant row in slices alternating with the plain load, whose sum it holds as "paired"."""
    count = max(1, min(_PAIRED_SLICES, int(bench.options.seconds // 2)))
    plain = Load(bench.files.bodies, REFERENCE_CONCURRENCY, bench.options.seconds / count)
    variant = replace(plain, keyed=keyed)
    bases, slices = [], []
    for _ in range(count):
        bases.append(_measure(bench, services["producer"], plain))
        slices.append(_measure(bench, services[service], variant, name, label))
    row, base = _together(name, label, slices), _together("single_c64", "", bases)
    row.details["paired"] = {
        "row": base.name, "events": base.events, "seconds": base.seconds,
        "events_per_s": base.events_per_s,
    }  # fmt: skip
    return row


def _together(name: str, label: str, slices: Sequence[Row]) -> Row:
    """Slices of one load as one row: sums, medians, maxima, CPU weighted by time."""
    seconds = sum(row.seconds for row in slices)
    cpu = {
        process: round(sum(row.cpu.get(process, 0.0) * row.seconds for row in slices) / seconds, 1)
        for process in slices[0].cpu
    }
    details = {
        **slices[0].details,
        "requests": sum(row.details["requests"] for row in slices),
        "p90_ms": statistics.median(row.details["p90_ms"] for row in slices),
        "max_ms": max(row.details["max_ms"] for row in slices),
        "slices": len(slices),
    }
    return Row(
        name, label, sum(row.events for row in slices), seconds,
        p50_ms=statistics.median(row.p50_ms or 0.0 for row in slices),
        p99_ms=max(row.p99_ms or 0.0 for row in slices),
        errors=sum(row.errors or 0 for row in slices), cpu=cpu, details=details,
    )  # fmt: skip


def _measure(bench: Bench, service: Service, load: Load, name: str = "", label: str = "") -> Row:
    """Run the load against the service: its row, with the CPU shares meanwhile."""
    url, process = service
    with cpu_meter(bench.cpu_pids(service=process.pid)) as cpu:
        row = run_wrk(bench, url, load, name, label)
    row.cpu = cpu.shares(wrk=row.cpu["wrk"])
    return row


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed no summary."""


def run_wrk(bench: Bench, url: str, load: Load, name: str = "", label: str = "") -> Row:
    """POST the load's bodies with wrk; the row of what it measured, its own CPU as "wrk"."""
    if shutil.which("wrk") is None:
        raise WrkError(_NO_WRK)
    script = ["keyed" if load.keyed else "cycle", load.path, str(load.bodies)]
    if load.rate is not None:
        prefix = str(uuid.uuid4())[:23]  # the first four groups; wrk appends 12 hex digits
        script = ["paced", load.path, str(load.bodies), str(load.sent), f"{load.rate:.3f}", prefix]
    # wrk's -d counts whole seconds: a shorter load stops at its first response after its time.
    stop = [f"--stop-after={load.seconds}"] if load.seconds < 1 else []
    argv = [
        *("wrk", "-t1", f"-c{load.connections}", f"-d{max(round(load.seconds), 1)}s"),
        *("--timeout", "10s", "-s", str(_SCRIPT), url, "--", *stop, *script),
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
    seconds, requests = summary["duration_us"] / 1e6, summary["requests"]
    errors = sum(summary[kind] for kind in ("connect", "read", "write", "status", "timeout"))
    events = max(requests - errors, 0) * load.events_per_request  # those answered below 400
    return Row(
        name, label, events, seconds,
        p50_ms=summary["p50_us"] / 1000, p99_ms=summary["p99_us"] / 1000, errors=errors,
        cpu={"wrk": round(100 * cpu_s / max(seconds, 1e-9), 1)},
        details={
            "connections": load.connections, "requests": requests,
            "events_per_request": load.events_per_request,
            "p90_ms": summary["p90_us"] / 1000, "max_ms": summary["max_us"] / 1000,
        },
    )  # fmt: skip
