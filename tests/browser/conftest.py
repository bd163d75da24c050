"""Fixtures for browser tests: Debian's Chromium; the broker is tests.support.kafka's."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.skips import require

CHROMIUM = Path("/usr/bin/chromium")
# CI services set CI; .ci/run sets TEST_REQUIRE_BROWSER (as it sets TEST_REQUIRE_DOCKER).
_REQUIRE_ENVS = ("CI", "TEST_REQUIRE_BROWSER")


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium; in CI its absence fails the test, elsewhere it skips it."""
    reason = f"{CHROMIUM} is missing: apt-get install -y chromium"
    require(CHROMIUM.is_file(), reason, required_by=_REQUIRE_ENVS)
    return CHROMIUM
