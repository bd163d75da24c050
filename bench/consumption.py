"""The rows that read records: the consumers and the zone processor draining a pre-filled
topic, the consumer's profile, and a record decoded strictly and tolerantly."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.context import Bench, Followed, consumed_event, metric, say, wait_until
from bench.metering import cpu_meter, python_module
from bench.profiler import profiling
from bench.report import Row
from devtools.processes import free_port, wait_until_serving
from shared.contracts.schema import parse_event, parse_record

_MIN_EVENTS_PER_S = 200  # only sets deadlines: slower than this is a failure, not a result
# Each row a helper process measures (bench.zone_throughput for the zones rows, charged to the
# "zones" process; bench.clients for the others, charged to "consumer"): its label and command.
_HELPER_ROWS = {
    "consumer_minimum": ("consumer minimum: getmany, decode, log to file, commit", "minimal"),
    "consumer_ceiling": ("consumer ceiling: bare getmany loop", "drain"),
    "zones_transactional": ("zones: HeartRateZoneReached, transactional", ""),
    "zones_at_least_once": ("zones: HeartRateZoneReached, at-least-once", "--at-least-once"),
}
_DECODE_ROWS = {
    "decode_strict": ("decode a record, strict (as the HTTP edge)", parse_event),
    "decode_tolerant": ("decode a record, tolerant (as the consumers)", parse_record),
}
# Each decode row's share of a round, cut into slices that alternate between the two.
_DECODE_SLICES = 10
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
    """One round: consumer_service, then each helper row, each in a group of its own."""
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
    """consumer_service under py-spy, draining a topic filled only once py-spy samples."""
    if topic is None or not bench.options.profile:
        return
    say("profiling the consumer (py-spy)")
    count = bench.options.consumer_events
    row = _service(bench, bench.create_topic("consume-profiled"), count, profiled=True)
    bench.report.profiles["consumer"]["events_per_s"] = row.events_per_s


def _fill(bench: Bench, topic: str, count: int) -> None:
    """Produce count events with trace headers to topic; raise unless all are stored."""
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


def _service(bench: Bench, topic: str, count: int, profiled: bool = False) -> Row:
    path = bench.unique_log("consumer-profiled" if profiled else "consumer")
    port = free_port()
    env = bench.env(topic, group=bench.group("consumer"))
    env["BIOMETRICS_CONSUMER__PROBE_PORT"] = str(port)
    process = bench.start(python_module("consumer_service"), bench.pinning.service, env, path)
    probes, timeout_s = f"http://127.0.0.1:{port}", count / _MIN_EVENTS_PER_S + 60
    try:
        with ExitStack() as stack:
            if profiled:
                # Attach once the consumer is up, so the profile shows consuming, not start-up;
                # the (empty) topic is filled once py-spy samples.
                wait_until_serving(f"{probes}/readyz", process)
                load = f"{count} events consumed as they are produced, under py-spy"
                stack.enter_context(profiling(bench, "consumer", process.pid, load))
                _fill(bench, topic, count)
            with cpu_meter(bench.cpu_pids(consumer=process.pid)) as cpu:
                what = f"consumer_service handling {count}; see {path}"
                wait_until(lambda: metric(probes, HANDLED) >= count, process, timeout_s, what)
    finally:
        code = bench.processes.stop(process)
    events = Followed(path, consumed_event)
    events.times()
    logged = len(events.entries)
    if code != 0 or logged < count:
        raise RuntimeError(f"consumer_service logged {logged} of {count} (exit {code}); see {path}")
    # Counted from the first line's time to the last's.
    seconds = events.entries[-1][1] - events.entries[0][1]
    details = {"topic": topic, "events_in_topic": count, "log": str(path)}
    label = "consumer: consumer_service, log to file, commit"
    return Row("consumer", label, logged - 1, seconds, errors=0, cpu=cpu.shares(), details=details)


def _helper(bench: Bench, topic: str, count: int, row: str) -> Row:
    """Run the row's helper on the service core over the topic; its row."""
    label, command = _HELPER_ROWS[row]
    zones = row.startswith("zones")
    module, process = ("bench.zone_throughput", "zones") if zones else ("bench.clients", "consumer")
    group, path = bench.group(row), bench.unique_log(row.replace("_", "-"))
    sink = path.with_suffix(".jsonl")
    args = [*filter(None, [command]), f"--expect={count}"]
    if not zones:
        args.append(f"--min-seconds={bench.options.seconds}")
    if command == "minimal":
        args.append(f"--sink={sink}")
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


def measure_decoding(bench: Bench) -> None:
    """One round of the decode rows, in alternating slices in the bench's own process."""
    wanted = {name: row for name, row in _DECODE_ROWS.items() if bench.wants(name)}
    if not wanted:
        return
    values = [line.split(b"\t", 1)[1] for line in bench.files.records.read_bytes().splitlines()]
    say("decode: strict and tolerant, alternating")
    decoded, spent = dict.fromkeys(wanted, 0), dict.fromkeys(wanted, 0.0)
    slice_s = bench.options.seconds / 2 / _DECODE_SLICES
    for _ in range(_DECODE_SLICES):
        for name, (_, decode) in wanted.items():
            count, seconds = _decode_for(decode, values, slice_s)
            decoded[name] += count
            spent[name] += seconds
    for name, (label, _) in wanted.items():
        row = Row(name, label, decoded[name], spent[name], errors=0, cpu={"bench": 100.0})
        bench.report.rows.append(row)


def _decode_for(
    decode: Callable[[bytes], Any], values: Sequence[bytes], seconds: float
) -> tuple[int, float]:
    """Decode the values in turn for about `seconds`; (values decoded, CPU seconds spent)."""
    decoded, started = 0, time.process_time()
    deadline = started + seconds
    while time.process_time() < deadline:
        for value in values:
            decode(value)
        decoded += len(values)
    return decoded, time.process_time() - started
