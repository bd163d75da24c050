"""The rows that drain a pre-filled topic: consumer_service (handling, logging to a file,
committing) against the minimal loop that does only the job's minimum (decode, a line per record
to a file, a commit per batch) and the bare getmany loop that does nothing; the zone processor
with Kafka transactions (exactly once) against plain acknowledged produce plus offset commits;
and the consumer's profile. The consumer is watched through its /readyz and /metrics; its rate is
timed from the first to the last of its event lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.context import Bench, Followed, consumed_event, metric, say, wait_until
from bench.metering import cpu_meter, python_module
from bench.profiler import Recording, start_recording, top_frames
from bench.report import Row
from devtools.processes import free_port, wait_until_serving

_MIN_EVENTS_PER_S = 200  # only sets deadlines: slower than this is a failure, not a result
_CONSUMER_ROWS = ("consumer", "consumer_minimum", "consumer_ceiling")
_ZONE_MODES = (("zones_transactional", "transactional"), ("zones_at_least_once", "at-least-once"))
# The consumer's counter of records whose line was written (prometheus_client adds _total).
HANDLED = "biometrics_records_handled_total"


def prefill(bench: Bench) -> str | None:
    """Fill the topic the consumer rows drain, if they (or the consumer profile) will run."""
    if not (
        bench.wants(*_CONSUMER_ROWS, *(row for row, _ in _ZONE_MODES)) or bench.options.profile
    ):
        return None
    count = bench.options.consumer_events
    say(f"filling a topic with {count} events for the consumer rows")
    topic = bench.create_topic("consume")
    _fill(bench, topic, count)
    return topic


def measure(bench: Bench, topic: str | None) -> None:
    """One round: consumer_service, the minimal loop, the bare loop, then the zone processor in
    each mode, each reading all of it in a new group."""
    if topic is None:
        return
    count = bench.options.consumer_events
    if bench.wants("consumer"):
        say(f"consumer: consumer_service draining {count} events")
        bench.report.rows.append(_service(bench, topic, count))
    if bench.wants("consumer_minimum"):
        say(f"consumer minimum: a getmany loop that decodes, logs and commits {count} events")
        bench.report.rows.append(_minimum(bench, topic, count))
    if bench.wants("consumer_ceiling"):
        say(f"consumer ceiling: a bare getmany loop over {count} events")
        bench.report.rows.append(_bare(bench, topic, count))
    for row, mode in _ZONE_MODES:
        if bench.wants(row):
            say(f"zones: {mode} over {count} events")
            bench.report.rows.append(_zones(bench, topic, count, row, mode))


def profile(bench: Bench, topic: str | None) -> None:
    """consumer_service under py-spy, draining a topic that is filled only once py-spy samples: a
    drain of a few thousand events is over before py-spy could attach to a running consumer."""
    if topic is None or not bench.options.profile:
        return
    say("profiling the consumer (py-spy)")
    count = bench.options.consumer_events
    output = bench.directory / "profile-consumer.txt"
    empty = bench.create_topic("consume-profiled")
    row = _service(bench, empty, count, profile=output)
    bench.report.profiles["consumer"] = {
        "file": str(output),
        "load": f"{count} events consumed as they are produced, under py-spy",
        "events_per_s": row.events_per_s,
        **top_frames(output),
    }


def _fill(bench: Bench, topic: str, count: int) -> None:
    """Produce count events to topic with the bare producer, each with the trace headers the
    producer service gives it; raise unless all are stored."""
    bench.run_helper(
        "bench.clients",
        ["produce", str(bench.files.records), f"--count={count}", "--trace-headers"],
        log=bench.log("prefill"),
        env=bench.env(topic),
        timeout_s=count / _MIN_EVENTS_PER_S + 60,
        on_load_core=True,
    )
    stored = bench.count_records(topic)
    if stored != count:
        raise RuntimeError(
            f"filling {topic} stored {stored} of {count}; see {bench.log('prefill')}"
        )


def _service(bench: Bench, topic: str, count: int, profile: Path | None = None) -> Row:
    name = "consumer" if profile is None else "consumer-profiled"
    path = bench.unique_log(name)
    port = free_port()
    env = bench.env(topic, group=bench.group("consumer"))
    env["BIOMETRICS_CONSUMER__PROBE_PORT"] = str(port)
    process = bench.start(python_module("consumer_service"), bench.pinning.service, env, path)
    probes = f"http://127.0.0.1:{port}"
    recording: Recording | None = None
    try:
        if profile is not None:
            # Attach once the consumer is up, so the profile shows consuming, not start-up;
            # the (empty) topic is filled once py-spy samples.
            wait_until_serving(f"{probes}/readyz", process)
            recording = start_recording(bench, process.pid, profile)
            recording.wait_until_sampling()
            _fill(bench, topic, count)
        with cpu_meter(bench.cpu_pids(consumer=process.pid)) as cpu:
            wait_until(
                lambda: metric(probes, HANDLED) >= count, process,
                count / _MIN_EVENTS_PER_S + 60, f"consumer_service handling {count}; see {path}",
            )  # fmt: skip
    finally:
        if recording is not None:
            recording.stop(bench.processes)
        code = bench.processes.stop(process)
    events = Followed(path, consumed_event)
    events.times()
    logged = len(events.entries)
    if code != 0 or logged < count:
        raise RuntimeError(f"consumer_service logged {logged} of {count} (exit {code}); see {path}")
    return Row(
        "consumer",
        "consumer: consumer_service, log to file, commit",
        logged - 1,  # counted from the first line's time to the last's
        events.entries[-1][1] - events.entries[0][1],
        errors=0,
        cpu=cpu.shares(),
        details={"topic": topic, "events_in_topic": count, "log": str(path)},
    )


def _minimum(bench: Bench, topic: str, count: int) -> Row:
    path = bench.unique_log("consumer-minimum")
    sink = path.with_suffix(".jsonl")
    group = bench.group("minimum")
    result, cpu = _drain(bench, topic, count, path, group, "minimal", f"--sink={sink}")
    with sink.open("rb") as lines:
        written = sum(chunk.count(b"\n") for chunk in iter(lambda: lines.read(1 << 20), b""))
    # The sink is only bytes on disk (a few passes of the topic): the count is what matters.
    sink.unlink()
    committed = bench.count_committed(group, topic)
    # Every pass reads the whole topic; the last one ends having committed all of it.
    if written != result["lines"] or written < result["passes"] * count or committed != count:
        raise RuntimeError(
            f"the minimal consumer wrote {written} lines (reported {result['lines']}, "
            f"{result['passes']} passes of {count}) and committed {committed}; see {path}"
        )
    return Row(
        "consumer_minimum",
        "consumer minimum: getmany, decode, log to file, commit",
        result["records"],
        result["seconds"],
        errors=0,
        cpu=cpu,
        details={"topic": topic, "passes": result["passes"], "lines": written, "log": str(path)},
    )


def _bare(bench: Bench, topic: str, count: int) -> Row:
    path = bench.unique_log("consumer-ceiling")
    result, cpu = _drain(bench, topic, count, path, bench.group("bare"), "drain")
    return Row(
        "consumer_ceiling",
        "consumer ceiling: bare getmany loop",
        result["records"],
        result["seconds"],
        errors=0,
        cpu=cpu,
        details={"topic": topic, "passes": result["passes"]},
    )


def _drain(
    bench: Bench, topic: str, count: int, path: Path, group: str, *args: str
) -> tuple[dict[str, Any], dict[str, float]]:
    """Run a drain loop of bench.clients on the service core; its result and CPU shares."""
    result, consumer_cpu, cpu = bench.run_helper(
        "bench.clients",
        [*args, f"--expect={count}", f"--min-seconds={bench.options.seconds}"],
        log=path,
        env=bench.env(topic, group=group),
        timeout_s=bench.options.seconds + count / _MIN_EVENTS_PER_S + 60,
    )
    return result, cpu.shares(consumer=consumer_cpu)


def _zones(bench: Bench, topic: str, count: int, row: str, mode: str) -> Row:
    group = bench.group(f"zones-{mode}")
    path = bench.unique_log(row.replace("_", "-"))
    args = [f"--expect={count}"] + (["--at-least-once"] if mode == "at-least-once" else [])
    result, zones_cpu, cpu = bench.run_helper(
        "bench.zone_throughput",
        args,
        log=path,
        env={
            **bench.env(topic, group=bench.group("unused")),
            "BIOMETRICS_ZONES__GROUP_ID": group,
            "BIOMETRICS_ZONES__TOPIC": f"{group}.zones",
        },
        timeout_s=count / _MIN_EVENTS_PER_S + 60,
    )
    return Row(
        row,
        f"zones: HeartRateZoneReached, {mode}",
        result["events"],
        result["seconds"],
        errors=0,
        cpu=cpu.shares(zones=zones_cpu),
        details={"zone_events": result["produced"], "batches": result["batches"], "log": str(path)},
    )
