"""Fixtures of the unit tests: the project's settings, a recording publisher, the app."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from producer_service import create_app
from shared.settings import Settings, load_settings
from tests.support import ROOT
from tests.support.fakes import RecordingPublisher


@pytest.fixture
def settings() -> Settings:
    settings = load_settings(ROOT, env={})
    http = settings.http.model_copy(update={"max_body_bytes": 64 * 1024, "max_batch_events": 10})
    return settings.model_copy(update={"http": http})


@pytest.fixture
def publisher(settings: Settings) -> RecordingPublisher:
    return RecordingPublisher(settings)


@pytest.fixture
def client(settings: Settings, publisher: RecordingPublisher) -> Iterator[TestClient]:
    with TestClient(create_app(settings, lambda _: publisher)) as client:
        yield client
