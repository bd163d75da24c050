"""The consumer rows: consumer_service draining a pre-filled topic (handling, logging to a file,
committing) against the minimal loop that does only the job's minimum (decode, a line per record
to a file, a commit per batch), and the bare getmany loop that does nothing; and the consumer's
profile."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson

from bench.context import Bench, say
from bench.eventlog import EventLog
from bench.handoff import receive
from bench.meter import CpuMeter
from bench.process import python_module, wait_for_text
from bench.profiler import Recording, start_recording, top_frames
from bench.results import Row
from bench.topics import count_committed, count_records, create_topic
from consumer_service import CONSUMER_STARTED

# The line as the consumer's JSON log writes it.
_STARTED_LINE = b'"message":' + orjson.dumps(CONSUMER_STARTED)
_MIN_EVENTS_PER_S = 200  # only sets deadlines: slower than this is a failure, not a result
_CONSUMER_ROWS = ("consumer", "consumer_minimum", "consumer_ceiling")


def prefill(bench: Bench) -> str | None:
    """Fill the topic the consumer rows drain, if they (or the consumer profile) will run."""
    if not (
        bench.wants(*_CONSUMER_ROWS, "zones_transactional", "zones_at_least_once")
        or bench.options.profile
    ):
        return None
    return _prefill(bench, bench.options.consumer_events)


def measure(bench: Bench, topic: str | None) -> None:
    """One round: consumer_service, the minimal loop, then the bare loop, each reading all of it
    in a new group."""
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


def profile(bench: Bench, topic: str | None) -> None:
    """consumer_service under py-spy, draining a topic that is filled only once py-spy samples: a
    drain of a few thousand events is over before py-spy could attach to a running consumer."""
    if topic is None or not bench.options.profile:
        return
    say("profiling the consumer (py-spy)")
    count = bench.options.consumer_events
    output = bench.directory / "profile-consumer.txt"
    empty = create_topic(bench.bootstrap, "consume-profiled", bench.settings.kafka.topic_partitions)
    row = _service(bench, empty, count, profile=output)
    bench.report.profiles["consumer"] = {
        "file": str(output),
        "load": f"{count} events consumed as they are produced, under py-spy",
        "events_per_s": row.events_per_s,
        **top_frames(output),
    }


def _prefill(bench: Bench, count: int) -> str:
    say(f"filling a topic with {count} events for the consumer rows")
    topic = create_topic(bench.bootstrap, "consume", bench.settings.kafka.topic_partitions)
    _fill(bench, topic, count)
    return topic


def _fill(bench: Bench, topic: str, count: int) -> None:
    """Produce count events to topic with the bare producer; raise unless all are stored."""
    argv = python_module("bench.bare_producer", str(bench.files.records), f"--count={count}")
    with bench.log("prefill").open("ab") as log:
        process = bench.processes.start(
            argv, bench.processes.pinning.load, env=bench.env(topic), stdout=log, stderr=log
        )
        code, _ = bench.processes.wait_measured(process, timeout_s=count / _MIN_EVENTS_PER_S + 60)
    stored = count_records(bench.bootstrap, topic)
    if code != 0 or stored != count:
        raise RuntimeError(
            f"filling {topic} stored {stored} of {count}; see {bench.log('prefill')}"
        )


def _service(bench: Bench, topic: str, count: int, profile: Path | None = None) -> Row:
    name = "consumer" if profile is None else "consumer-profiled"
    path = bench.unique_log(name)
    env = bench.env(topic, group=bench.group("consumer"))
    with path.open("wb") as out, path.with_suffix(".stderr").open("wb") as err:
        process = bench.processes.start(
            python_module("consumer_service"), bench.processes.pinning.service,
            env=env, stdout=out, stderr=err,
        )  # fmt: skip
        recording: Recording | None = None
        try:
            if profile is not None:
                # Attach once imports are done, so the profile shows consuming, not start-up;
                # the (empty) topic is filled once py-spy samples.
                wait_for_text(path, _STARTED_LINE, process)
                recording = start_recording(bench.processes, process.pid, profile)
                recording.wait_until_sampling()
                _fill(bench, topic, count)
            events = EventLog(path)
            with CpuMeter(bench.cpu_pids(consumer=process.pid)) as cpu:
                events.wait_for(count, count / _MIN_EVENTS_PER_S + 60, process)
        finally:
            if recording is not None:
                recording.stop(bench.processes)
            code = bench.processes.stop(process)
    logged, seconds = events.span()
    if code != 0 or logged < count:
        raise RuntimeError(f"consumer_service logged {logged} of {count} (exit {code}); see {path}")
    return Row(
        "consumer",
        "consumer: consumer_service, log to file, commit",
        logged - 1,  # counted from the first line's time to the last's
        seconds,
        errors=0,
        cpu=cpu.shares(),
        details={"topic": topic, "events_in_topic": count, "log": str(path)},
    )


def _minimum(bench: Bench, topic: str, count: int) -> Row:
    path = bench.unique_log("consumer-minimum")
    sink = path.with_suffix(".jsonl")
    group = bench.group("minimum")
    result, cpu = _drain(
        bench, topic, count, "bench.minimal_consumer", path, group, f"--sink={sink}"
    )
    written = _count_lines(sink)
    # The sink is only bytes on disk (a few passes of the topic): the count is what matters.
    sink.unlink()
    committed = count_committed(bench.bootstrap, group, topic)
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
    result, cpu = _drain(bench, topic, count, "bench.bare_consumer", path, bench.group("bare"))
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
    bench: Bench, topic: str, count: int, module: str, path: Path, group: str, *args: str
) -> tuple[dict[str, Any], dict[str, float]]:
    """Run a drain loop (bench.bare_consumer's) on the service core; its result and CPU shares."""
    argv = python_module(
        module, f"--expect={count}", f"--min-seconds={bench.options.seconds}", *args
    )
    with path.open("wb") as log, CpuMeter(bench.cpu_pids()) as cpu:
        started = time.monotonic()
        process = bench.processes.start(
            argv, bench.processes.pinning.service, env=bench.env(topic, group=group),
            stdout=log, stderr=log,
        )  # fmt: skip
        code, cpu_s = bench.processes.wait_measured(
            process, timeout_s=bench.options.seconds + count / _MIN_EVENTS_PER_S + 60
        )
        consumer_cpu = round(100 * cpu_s / (time.monotonic() - started), 1)
    if code != 0:
        raise RuntimeError(f"{module} exited with {code}; see {path}")
    return receive(path.read_text()), cpu.shares(consumer=consumer_cpu)


def _count_lines(path: Path) -> int:
    lines = 0
    with path.open("rb") as sink:
        while chunk := sink.read(1 << 20):
            lines += chunk.count(b"\n")
    return lines
