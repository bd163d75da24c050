"""Skipping a test whose tool is missing, or failing it where CI says the tool must be there."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pytest

# Set by CI after it has started its Docker engine.
REQUIRE_DOCKER = ("TEST_REQUIRE_DOCKER",)


def require(available: bool, reason: str, required_by: Sequence[str] = REQUIRE_DOCKER) -> None:
    """Skip with `reason` when not available, or fail when one of `required_by` is set."""
    if available:
        return
    if required := [name for name in required_by if os.environ.get(name)]:
        pytest.fail(f"{reason} (${required[0]} is set)", pytrace=False)
    pytest.skip(reason)
