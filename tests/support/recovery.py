"""Deadlines for a service to recover from a fault a test made, derived from the timeouts the
test configures. A deadline only fails a test: each wait ends as soon as what it waits for is
seen, so a generous slack costs nothing on a good run."""

from __future__ import annotations

from tests.support.settings import project_settings

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


# The defaults of settings.toml, for tests that leave them as they are: the longer of the
# consumer's and the zone processor's sessions.
_DEFAULTS = project_settings()
DEFAULT_SESSION_TIMEOUT_MS = max(
    _DEFAULTS.consumer.session_timeout_ms, _DEFAULTS.zones.session_timeout_ms
)
DEFAULT_REQUEST_TIMEOUT_MS = _DEFAULTS.kafka.request_timeout_ms
# A test's own records worked off on a busy 2-core machine, once its services have recovered:
# thousands of records in batches and transactions, a few seconds on a good run.
WORK_S = 60.0


def caught_up_s(session_timeout_ms: int, request_timeout_ms: int) -> float:
    """A group caught up with its input after a member or a broker was lost: the rejoin, then the
    work."""
    return member_rejoined_s(session_timeout_ms, request_timeout_ms) + WORK_S
