"""The integration tests' marks and report header; their fixtures are tests.support.kafka's."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.kafka import broker_source

_HERE = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    """Register `cluster`: .ci/run's Docker phase leaves these out, as they need no Docker."""
    config.addinivalue_line(
        "markers", "cluster: runs a three-node LocalKafkaCluster of its own (no Docker)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration with `kafka`."""
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.kafka)


def pytest_report_header() -> str:
    """Say which broker the Kafka tests will get, so a CI log shows the path taken."""
    return broker_source()
