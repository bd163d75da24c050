"""Fixtures of the unit tests: the project's settings, a recording publisher, the app."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from producer_service import create_app
from shared.runtime.settings import Settings
from tests.support.fakes import RecordingPublisher
from tests.support.settings import project_settings


@pytest.fixture
def settings() -> Settings:
    return project_settings(http={"max_body_bytes": 64 * 1024, "max_batch_events": 10})


@pytest.fixture
def publisher(settings: Settings) -> RecordingPublisher:
    return RecordingPublisher(settings)


@pytest.fixture
def client(settings: Settings, publisher: RecordingPublisher) -> Iterator[TestClient]:
    with TestClient(create_app(settings, lambda _: publisher)) as client:
        yield client
