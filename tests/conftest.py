"""The fixtures every test directory may use: the real servers of tests.support.kafka. Hypothesis
runs without its per-example deadline: a test's result never depends on how fast the machine
ran it."""

from __future__ import annotations

from hypothesis import settings

pytest_plugins = ["tests.support.kafka"]

settings.register_profile("suite", deadline=None)
settings.load_profile("suite")
