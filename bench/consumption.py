"""The rows that drain a pre-filled topic: consumer_service against the minimal loop that does
only the job's minimum and the bare getmany loop; the zone processor with transactions against
plain acknowledged produce plus offset commits; and the consumer's profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.context import Bench, Followed, consumed_event, metric, say, wait_until
from bench.metering import cpu_meter, python_module
from bench.profiler import Recording, start_recording, top_frames
from bench.report import Row
from devtools.processes import free_port, wait_until_serving

_MIN_EVENTS_PER_S = 200  # only sets deadlines: slower than this is a failure, not a result
# Each row a helper process measures: its label, the helper and its arguments, and the process
# its CPU is charged to.
_HELPER_ROWS = {
    "consumer_minimum": (
        "consumer minimum: getmany, decode, log to file, commit", "bench.clients", "minimal",
        "consumer",
    ),
    "consumer_ceiling": (
        "consumer ceiling: bare getmany loop", "bench.clients", "drain", "consumer"
    ),
    "zones_transactional": (
        "zones: HeartRateZoneReached, transactional", "bench.zone_throughput", "", "zones"
    ),
    "zones_at_least_once": (
        "zones: HeartRateZoneReached, at-least-once", "bench.zone_throughput", "--at-least-once",
        "zones",
    ),
}  # fmt: skip
# The consumer's counter of records whose line was written (prometheus_client adds _total).
HANDLED = "biometrics_records_handled_total"


def prefill(bench: Bench) -> str | None:
    """Fill the topic the consumer rows drain, if they (or the consumer profile) will run."""
    if not (bench.wants("consumer", *_HELPER_ROWS) or bench.options.profile):
        return None
    count = bench.options.consumer_events
    say(f"filling a topic with {count} events for the consumer rows")
    topic = bench.create_topic("consume")
    _fill(bench, topic, count)
    return topic


def measure(bench: Bench, topic: str | None) -> None:
    """One round: consumer_service, then each helper row, each reading all of the topic in a
    group of its own."""
    if topic is None:
        return
    count = bench.options.consumer_events
    if bench.wants("consumer"):
        say(f"consumer: consumer_service draining {count} events")
        bench.report.rows.append(_service(bench, topic, count))
    for row in _HELPER_ROWS:
        if bench.wants(row):
            say(f"{_HELPER_ROWS[row][0]}: {count} events")
            bench.report.rows.append(_helper(bench, topic, count, row))


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


def _helper(bench: Bench, topic: str, count: int, row: str) -> Row:
    """Run the row's helper on the service core over the topic; its row. A drain reads the topic
    again until --seconds have passed; the minimal loop's lines and commits are checked."""
    label, module, command, process = _HELPER_ROWS[row]
    group, path = bench.group(row), bench.unique_log(row.replace("_", "-"))
    sink = path.with_suffix(".jsonl")
    args = [*filter(None, [command]), f"--expect={count}"]
    if module == "bench.clients":
        args += [
            f"--min-seconds={bench.options.seconds}",
            *([f"--sink={sink}"] * (command == "minimal")),
        ]
    env = bench.env(topic, group=group)
    env |= {"BIOMETRICS_ZONES__GROUP_ID": group, "BIOMETRICS_ZONES__TOPIC": f"{group}.zones"}
    timeout_s = bench.options.seconds + count / _MIN_EVENTS_PER_S + 60
    result, own_cpu, cpu = bench.run_helper(module, args, log=path, env=env, timeout_s=timeout_s)
    if command == "minimal":
        _check_minimal(bench, result, count, sink, group, topic)
    events = result.pop("records" if "records" in result else "events")
    seconds = result.pop("seconds")
    shares = cpu.shares(**{process: own_cpu})
    details = {"topic": topic, "log": str(path), **result}
    return Row(row, label, events, seconds, errors=0, cpu=shares, details=details)


def _check_minimal(
    bench: Bench, result: dict[str, Any], count: int, sink: Path, group: str, topic: str
) -> None:
    """Every pass of the minimal loop wrote a line per record, and its last committed it all."""
    with sink.open("rb") as lines:
        written = sum(chunk.count(b"\n") for chunk in iter(lambda: lines.read(1 << 20), b""))
    sink.unlink()  # only bytes on disk (a few passes of the topic): the count is what matters
    committed = bench.count_committed(group, topic)
    if written != result["lines"] or written < result["passes"] * count or committed != count:
        raise RuntimeError(
            f"the minimal consumer wrote {written} lines (reported {result['lines']}, "
            f"{result['passes']} passes of {count}) and committed {committed}"
        )
