"""Deadlines for a service to recover from a fault a test made, derived from the timeouts the
test configures. A deadline only fails a test: each wait ends as soon as what it waits for is
seen, so a generous slack costs nothing on a good run."""

from __future__ import annotations

# What a busy 2-core machine may add to any step: scheduling, a JVM's pauses, retries' backoffs.
SLACK_S = 20.0


def member_rejoined_s(session_timeout_ms: int, request_timeout_ms: int) -> float:
    """A consumer-group member back in its group (ready) after its broker restarted: the
    restarted coordinator keeps the member's old membership until its session expires, then a
    rebalance completes; each request the restart caught runs out its request timeout first (the
    one on the dead connection, then the coordinator lookup)."""
    return session_timeout_ms / 1000 + 2 * request_timeout_ms / 1000 + SLACK_S


def client_reconnected_s(request_timeout_ms: int) -> float:
    """A client (producer or consumer) answering again after its broker restarted: the request
    in flight runs out its timeout, then the metadata is fetched anew."""
    return 2 * request_timeout_ms / 1000 + SLACK_S
