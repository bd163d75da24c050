"""What the tests share, one module a subject; a test imports each name from its module.

- `samples`: sample events and consumed records.
- `fakes`: small real classes standing in for a publisher, a sink, the dead-letter topic.
- `logs`: logging configured for one test.
- `settings`: the project's settings for a test broker, as `Settings` or as a process's environment.
- `polling`: `eventually`, a condition polled against a deadline.
- `metrics`: a sample's value in a service's /metrics text.
- `recovery`: deadlines for a service's recovery from a fault, from the timeouts a test sets.
- `kafka`: the pytest fixtures of a real broker, cluster, Schema Registry, fresh topics and groups.
- `topics`: writing, reading and awaiting a topic's records and a group's offsets.
- `servers`: the producer and the consumer run in the test's event loop.
- `processes`: the services run as real processes, their output read as it comes.
- `zones`: the zone processor's samples, reference results and in-process members.
- `load`: HTTP load on a producer, and what became of the accepted events.
- `stdout_writers`: a child process writing log and event lines to stdout at once.
- `skips`: skip a test whose tool is missing, or fail it where CI requires the tool.
- `monitoring`: the rule files, the dashboard, Debian's Prometheus tools, the metrics' names.
- `prometheus`: Prometheus run for a test with a generated configuration, and its HTTP API.
- `compose_project`, `stack_client`: a compose stack and what the Docker tests do to it.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
