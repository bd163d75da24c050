"""Fixtures for browser tests: Debian's Chromium, and a broker for the producer they drive."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.local_kafka import LocalKafka

CHROMIUM = Path("/usr/bin/chromium")
_BOOTSTRAP_ENV = "BIOMETRICS_KAFKA__BOOTSTRAP_SERVERS"
# CI services set CI; .ci/run sets TEST_REQUIRE_BROWSER (as it sets TEST_REQUIRE_DOCKER).
_REQUIRE_ENVS = ("CI", "TEST_REQUIRE_BROWSER")


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium; in CI its absence fails the test, elsewhere it skips it."""
    if not CHROMIUM.is_file():
        reason = f"{CHROMIUM} is missing: apt-get install -y chromium"
        if required := [name for name in _REQUIRE_ENVS if os.environ.get(name)]:
            pytest.fail(
                f"${required[0]} is set, so the browser tests must run, but {reason}",
                pytrace=False,
            )
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="module")
def kafka_bootstrap() -> Iterator[str]:
    """$BIOMETRICS_KAFKA__BOOTSTRAP_SERVERS, else a local Apache Kafka for this module."""
    if servers := os.environ.get(_BOOTSTRAP_ENV):
        yield servers
        return
    with LocalKafka() as kafka:
        yield kafka.bootstrap_servers
